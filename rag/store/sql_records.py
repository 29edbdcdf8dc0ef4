"""Evaluation runs and API keys in the ledger: the part of `SqlLedger` that is about no collection.

Results are committed one by one, so a killed evaluation loses at most the question in flight, and
`(run, question, arm)` is unique, so a resumed run never writes a result twice. An API key's row
holds only the SHA-256 of the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from rag.errors import ConfigError, NotFoundError
from rag.store.ledger import ApiKey, EvalResult, EvalRun, utcnow
from rag.types import EVAL_RUN_FIELDS, ApiKeyRecord, EvalResultInfo, EvalRunInfo


def _check_fields(fields: dict[str, Any]) -> None:
    bad = sorted(set(fields) - set(EVAL_RUN_FIELDS))
    if bad:
        raise ConfigError(f"evaluation runs have no field {bad[0]!r}; the fields are {', '.join(EVAL_RUN_FIELDS)}")


def _run(r: EvalRun) -> EvalRunInfo:
    return EvalRunInfo(id=r.id, kind=r.kind, status=r.status, dataset=r.dataset, collection=r.collection,
                       arms=list(r.arms or []), dataset_hash=r.dataset_hash, split_hash=r.split_hash,
                       index_manifest_hash=r.index_manifest_hash, code_version=r.code_version,
                       provenance=dict(r.provenance or {}), split=dict(r.split or {}), summary=dict(r.summary or {}),
                       report_path=r.report_path, created_at=r.created_at, finished_at=r.finished_at)


def _result(r: EvalResult) -> EvalResultInfo:
    return EvalResultInfo(id=r.id, run_id=r.run_id, question_id=r.question_id, arm=r.arm, answer=r.answer,
                          metrics=dict(r.metrics or {}), detail=dict(r.detail or {}))


def _key(r: ApiKey) -> ApiKeyRecord:
    return ApiKeyRecord(id=r.id, name=r.name, prefix=r.prefix, key_hash=r.key_hash, role=r.role,
                        collections=tuple(r.collections or ()), created_at=r.created_at, revoked_at=r.revoked_at,
                        last_used_at=r.last_used_at)


def _no_run(run_id: int) -> NotFoundError:
    return NotFoundError(f"evaluation run {run_id} not found; `rag eval list` shows the runs")


class SqlRecords:
    """Evaluation runs and API keys on a SQLAlchemy session factory (`SqlLedger` adds the rest)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    # -- evaluation runs -----------------------------------------------------------------------------
    def create_eval_run(self, **fields: Any) -> int:
        _check_fields(fields)
        with self.sessions.begin() as s:
            run = EvalRun(**fields)
            s.add(run)
            s.flush()
            return int(run.id)

    def update_eval_run(self, run_id: int, **fields: Any) -> None:
        _check_fields(fields)
        with self.sessions.begin() as s:
            run = s.get(EvalRun, run_id)
            if run is None:
                raise _no_run(run_id)
            for key, value in fields.items():
                setattr(run, key, value)

    def eval_run(self, run_id: int) -> EvalRunInfo | None:
        with self.sessions() as s:
            run = s.get(EvalRun, run_id)
            return _run(run) if run is not None else None

    def eval_runs(self, limit: int = 50) -> list[EvalRunInfo]:
        with self.sessions() as s:
            return [_run(r) for r in s.scalars(select(EvalRun).order_by(EvalRun.id.desc()).limit(limit))]

    def add_eval_result(self, run_id: int, question_id: str, arm: str, answer: str, metrics: dict[str, Any],
                        detail: dict[str, Any]) -> None:
        with self.sessions.begin() as s:
            s.add(EvalResult(run_id=run_id, question_id=question_id, arm=arm, answer=answer, metrics=metrics,
                             detail=detail))

    def eval_results(self, run_id: int) -> list[EvalResultInfo]:
        with self.sessions() as s:
            rows = s.scalars(select(EvalResult).where(EvalResult.run_id == run_id).order_by(EvalResult.id))
            return [_result(r) for r in rows]

    def update_eval_result(self, result_id: int, *, metrics: dict[str, Any] | None = None,
                           detail: dict[str, Any] | None = None) -> None:
        with self.sessions.begin() as s:
            row = s.get(EvalResult, result_id)
            if row is None:
                raise NotFoundError(f"evaluation result {result_id} not found (its run was deleted?)")
            if metrics:
                row.metrics = {**row.metrics, **metrics}
            if detail:
                row.detail = {**row.detail, **detail}

    # -- API keys ------------------------------------------------------------------------------------
    def add_api_key(self, *, name: str, prefix: str, key_hash: str, role: str,
                    collections: Sequence[str]) -> ApiKeyRecord:
        with self.sessions.begin() as s:
            row = ApiKey(name=name, prefix=prefix, key_hash=key_hash, role=role, collections=list(collections))
            s.add(row)
            s.flush()
            return _key(row)

    def api_keys(self, prefix: str | None = None) -> list[ApiKeyRecord]:
        q = select(ApiKey).order_by(ApiKey.id)
        with self.sessions() as s:
            return [_key(r) for r in s.scalars(q if prefix is None else q.where(ApiKey.prefix == prefix))]

    def revoke_api_key(self, key_id: int) -> ApiKeyRecord | None:
        with self.sessions.begin() as s:
            row = s.get(ApiKey, key_id)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return _key(row)

    def touch_api_key(self, key_id: int) -> None:
        with self.sessions.begin() as s:
            s.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))
