"""The only Streamlit-aware code of Infi: session-state keys, shared widgets and charts."""
