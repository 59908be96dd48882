"""The README's Python example runs as written."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_readme_python_example_runs(tmp_path):
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    section = text[text.index("## The training loop and the Python API"):]
    (block,) = re.findall(r"```python\n(.*?)```", section[:section.index("\n## ", 3)], re.S)
    done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("<btc Model 'build/api': pp-prop") and "'epoch': 2" in done.stdout
    assert 0.5 < float(lines[-1]) <= 1.0  # digits after two epochs
    assert (tmp_path / "build" / "api.npz").is_file()
