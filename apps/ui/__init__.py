"""The Streamlit app (`rag app`): collections, cited answers, raw search, evaluation runs.

The logic lives in plain modules here (uploads, query rewriting, formatting,
evaluation tables) so it is tested without a browser; `views/` holds the thin
page scripts (not `pages/`, which Streamlit would list on its own) and `main.py` the entry point
that `streamlit run` starts.
"""
