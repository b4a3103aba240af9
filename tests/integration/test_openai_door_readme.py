"""README "OpenAI-compatible endpoint": its Python SDK example, as written, against `router-service
up` (what `make up` runs) as a real process, with the dev key `up` printed. Only the door's
address changes, from the README's 127.0.0.1:8080 (config/embedded.yaml's default) to a free
port, so that this test never depends on 8080 being free."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.integration.test_readme_quickstart import ROOT, Stack, stack

__all__ = ["stack"]  # the fixture, imported for the tests below

README_ADDRESS = "127.0.0.1:8080"


def readme_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## OpenAI-compatible endpoint", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_example_is_short_and_names_the_embedded_address() -> None:
    code = readme_example()
    lines = [line for line in code.splitlines() if line.strip() and not line.startswith("import ")]
    assert len(lines) == 3, code
    assert f"http://{README_ADDRESS}/v1" in code
    embedded = (ROOT / "config" / "embedded.yaml").read_text(encoding="utf-8")
    assert f"${{ROUTER_OPENAI_LISTEN:-{README_ADDRESS}}}" in embedded


def test_the_readme_example_answers_against_up(stack: Stack) -> None:
    assert f"router OpenAI HTTP http://{stack.openai_listen}/v1 " in stack.text()  # what `up` printed
    code = readme_example().replace(README_ADDRESS, stack.openai_listen)
    env = {**os.environ, "ROUTER_API_KEY": stack.key}
    ran = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip(), ran.stderr  # the answer's text
