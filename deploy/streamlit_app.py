"""Streamlit Community Cloud entry point: choose ``deploy/streamlit_app.py`` as the app's main file.

Community Cloud installs the requirements file beside the main file first, so
``deploy/requirements.txt`` (CPU torch, then Infi's dependencies) is used instead of the root
one, and no CUDA wheels are pulled. That file installs the dependencies, not Infi itself, so the
repository goes on the path here. The deployment runs hosted: local folders are hidden and models
come from the hub or the bundled demo (a root-level secret INFI_HOSTED = "0", which Community
Cloud exposes as an environment variable, undoes it).
"""

import os
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("INFI_HOSTED", "1")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
runpy.run_path(str(ROOT / "app.py"), run_name="__main__")
