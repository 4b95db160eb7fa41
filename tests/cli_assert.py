"""Shared by the command-line tests: a failed command's output is one clear error line."""


def assert_one_line_error(out, *needles, code: int = 2, empty_stdout: bool = True) -> str:
    """``out`` (a CompletedProcess) exited ``code`` with exactly one ``error: `` line on stderr, no
    traceback, each of ``needles`` in that line, and (``empty_stdout``) nothing on stdout."""
    assert out.returncode == code, (out.returncode, out.stdout[-2000:], out.stderr[-2000:])
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    if empty_stdout:
        assert out.stdout == "", out.stdout
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]
