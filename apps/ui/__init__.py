"""The Streamlit app (`rag app`): collections, cited answers, raw search, evaluation runs.

The logic lives in plain modules here (uploads, query rewriting, formatting,
evaluation tables) so it is tested without a browser; `pages/` holds the thin
page scripts and `main.py` the entry point that `streamlit run` starts.
"""
