"""Assertions shared by the CLI tests."""


def assert_one_line_error(result, *needles):
    """A click result that failed with exit code 2 and one ``Error: ...`` line holding every needle."""
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
