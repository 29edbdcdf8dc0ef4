"""Page scripts run by Streamlit (not imported); a package only so that they ship with the wheel."""
