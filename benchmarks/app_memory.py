"""Resident memory of the app process: idle after start (the baseline) and after the demo story
driven in Debian's chromium. Last line: JSON with rss_mb, idle_rss_mb, story_over_idle."""

from __future__ import annotations

import tempfile
from pathlib import Path

from _common import emit, repo_module

story = repo_module("tests/browser_story.py")
run_demo_story, streamlit_server = story.run_demo_story, story.streamlit_server


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found")


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    with streamlit_server(tmp / "streamlit.log") as (url, proc):
        idle = rss_mb(proc.pid)
        print(f"app process idle after start: {idle:.0f} MB")
        run_demo_story(url, images=1200)
        after = rss_mb(proc.pid)
        print(f"after the demo story (1200 images + shifted split): {after:.0f} MB "
              f"({after / idle:.1f}x idle)")
    emit({"rss_mb": after, "idle_rss_mb": idle, "story_over_idle": after / idle})


if __name__ == "__main__":
    main()
