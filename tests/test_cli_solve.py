"""`hwgen solve`, `hwgen variant` and the conventions every command follows."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from grader import __version__
from grader.cli import cli
from grader.params import HW2


def run(*args, input=None, env=None):
    return CliRunner().invoke(cli, list(args), input=input, env=env, catch_exceptions=False)


def test_solve_without_options_prints_the_hw2_answers():
    result = run("solve")
    assert result.exit_code == 0
    assert "Loss L = 0.3095" in result.output
    assert "| 2 | -1.5000 | -0.7769 |" in result.output
    assert "| k=1 | 1.0532 | 0.9793 | 0.6251 | 0.5053 |" in result.output


def test_solve_prints_no_negative_zero():
    assert "-0.0000" not in run("solve").output


def test_solve_json_has_exactly_the_answer_keys_in_order():
    answers = json.loads(run("solve", "--format", "json").output)
    assert list(answers) == ["u", "h", "z", "o", "loss", "grad_w", "grad_v", "w_new", "v_new"]


def test_solve_json_has_the_shapes_of_w_and_v():
    answers = json.loads(run("solve", "--format", "json").output)
    assert [len(answers["grad_w"]), len(answers["grad_w"][0])] == [2, 4]
    assert [len(answers["v_new"]), len(answers["v_new"][0])] == [4, 3]
    assert isinstance(answers["loss"], float)


def test_solve_json_is_full_precision():
    answers = json.loads(run("solve", "--format", "json").output)
    assert answers["loss"] == pytest.approx(0.3095481859814395, rel=1e-15)


def test_solve_reads_params_from_standard_input():
    result = run("solve", "--params", "-", "--format", "json", input=json.dumps(HW2.to_json()))
    assert result.exit_code == 0
    assert json.loads(result.output) == json.loads(run("solve", "--format", "json").output)


def test_solve_reads_params_from_a_file(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(dict(HW2.to_json(), activation="tanh")))
    result = run("solve", "--params", str(path))
    assert result.exit_code == 0
    assert "tanh hidden layer" in result.output


def test_bad_params_give_one_error_line_naming_the_field():
    bad = dict(HW2.to_json(), target=[1, 1])
    result = run("solve", "--params", "-", input=json.dumps(bad))
    assert result.exit_code == 1
    assert result.output == "Error: standard input: target: must be one-hot: a single 1 and 0 elsewhere\n"


def test_non_finite_params_are_refused():
    result = run("solve", "--params", "-", input='{"x": [NaN]}')
    assert result.exit_code == 1
    assert result.output == "Error: standard input: x[0]: NaN is not a number JSON allows; write a finite number\n"


@pytest.mark.parametrize("command", ["solve", "key"])
def test_an_integer_beyond_float_range_in_params_is_one_line_naming_the_entry(command):
    text = json.dumps(dict(HW2.to_json(), x=[1.0, 1.0, 12345.5])).replace("12345.5", "1" + "0" * 310)
    result = run(command, "--params", "-", input=text)
    assert result.exit_code == 1
    assert result.output == "Error: standard input: x[2]: the number is too large to be finite\n"


def test_missing_params_file_is_a_user_error(tmp_path):
    result = run("solve", "--params", str(tmp_path / "nope.json"))
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "cannot read" in result.output


def test_unknown_format_is_a_usage_error():
    assert run("solve", "--format", "xml").exit_code == 2


def test_variant_prints_parameters_that_solve_accepts():
    variant = run("variant", "--seed", "s3cret", "--student", "2018170622")
    assert variant.exit_code == 0
    assert run("solve", "--params", "-", input=variant.output).exit_code == 0


def test_variant_takes_the_seed_from_the_environment():
    by_env = run("variant", "--student", "x", env={"HWGEN_SEED": "s3cret"})
    by_option = run("variant", "--seed", "s3cret", "--student", "x")
    assert by_env.output == by_option.output


def test_variant_without_a_seed_is_a_usage_error():
    result = run("variant", "--student", "x", env={"HWGEN_SEED": None})
    assert result.exit_code == 2
    assert "Missing option '--seed'" in result.output


@pytest.mark.parametrize("command", ["variant", "key"])
@pytest.mark.parametrize("student", ["", " "])
def test_an_empty_student_id_is_a_usage_error(command, student):
    result = run(command, "--seed", "s3cret", "--student", student)
    assert result.exit_code == 2
    assert "'--student': must not be empty" in result.output


NOT_UTF8 = "\udcff"  # how Python hands over the byte 0xff of a command line or the environment


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["variant", "--seed", "s", "--student", NOT_UTF8], {}, "Error: Invalid value for '--student': not valid UTF-8 text"),
        (["variant", "--seed", NOT_UTF8, "--student", "a"], {}, "Error: Invalid value for '--seed': not valid UTF-8 text"),
        (["key", "--seed", NOT_UTF8, "--student", "a"], {}, "Error: Invalid value for '--seed': not valid UTF-8 text"),
        (["key", "--seed", "s", "--student", "a" + NOT_UTF8], {}, "Error: Invalid value for '--student': not valid UTF-8 text"),
        (["generate", "--count", "2", "--out", "x", "--no-pdf"], {"HWGEN_SEED": NOT_UTF8}, "Error: Invalid value for '--seed': not valid UTF-8 text (from the HWGEN_SEED environment variable)"),
    ],
)
def test_a_seed_or_student_id_that_is_not_utf8_is_a_usage_error_naming_the_option(args, env, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(*args, env={"HWGEN_SEED": None, **env})
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == message
    assert list(tmp_path.iterdir()) == []


def test_a_student_id_that_is_not_utf8_on_a_real_command_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "LC_ALL": "C.UTF-8"}
    proc = subprocess.run([sys.executable, "-m", "grader", "variant", "--seed", "s", "--student", b"\xff"], cwd=tmp_path, env=env, capture_output=True)
    assert proc.returncode == 2
    assert proc.stderr.decode().splitlines()[-1] == "Error: Invalid value for '--student': not valid UTF-8 text"


@pytest.mark.parametrize("command", ["variant", "key"])
def test_spaces_around_a_student_id_are_removed_as_the_roster_removes_them(command):
    plain = run(command, "--seed", "s3cret", "--student", "1")
    spaced = run(command, "--seed", "s3cret", "--student", " 1 ")
    assert spaced.exit_code == 0
    assert spaced.stdout == plain.stdout
    assert spaced.stderr == "Warning: --student: surrounding spaces removed from ' 1 '\n"
    assert plain.stderr == ""


@pytest.mark.parametrize("command", ["variant", "key"])
def test_a_student_id_no_roster_could_hold_is_a_usage_error(command):
    result = run(command, "--seed", "s3cret", "--student", "a\tb")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == "Error: Invalid value for '--student': contains a control character (\\t); no roster or answer file could give that id"


def test_version():
    assert run("--version").output == f"hwgen, version {__version__}\n"


def test_hwgen_alone_shows_its_help_on_several_lines():
    result = run()
    lines = result.output.splitlines()
    assert lines[0].endswith(" [OPTIONS] COMMAND [ARGS]...") and len(lines) > 10 and "\\n" not in result.output


def test_an_output_folder_named_dash_is_no_standard_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-").write_text("a file")
    result = run("grade", ".", "--out", "-")
    assert result.exit_code == 2 and "'-' exists and is not a folder" in result.stderr


def all_commands():
    return sorted(cli.commands)


@pytest.mark.parametrize("name", all_commands())
def test_every_command_has_help_with_an_example(name):
    result = run(name, "--help")
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert f"hwgen {name}" in result.output


def help_examples(name):
    """The command lines of the Example: block of ``hwgen NAME --help`` (the group's, for
    None), as printed."""
    text = run(*([name] if name else []), "--help").stdout
    block = text.split("Example:", 1)[1].split("Options:", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_every_help_example_runs_as_written(tmp_path):
    """Each example, typed into a shell as it is printed, in a folder with the files it names."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from grader.render import blank_submission

    repo = Path(__file__).resolve().parent.parent
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "hwgen").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m grader "$@"\n')
    (bin_dir / "hwgen").chmod(0o755)
    work = tmp_path / "work"
    shutil.copytree(repo / "submissions", work / "submissions")
    (work / "roster.csv").write_text("student_id,name\n2018170622,Minjun Kim\nalice,Alice\n")
    (work / "my_instance.json").write_text(json.dumps(HW2.to_json()))
    (work / "submission.json").write_text(json.dumps(blank_submission(HW2, "2018170622")))
    (work / "inbox").mkdir()
    (work / "inbox" / "2018170622.json").write_text(json.dumps(blank_submission(HW2, "2018170622")))
    env = {k: v for k, v in os.environ.items() if k != "HWGEN_SEED"}
    env.update(PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONPATH=str(repo))
    # generate first: grade's example reads the class/manifest.json it writes.
    names = sorted(all_commands(), key=lambda name: name != "generate") + [None]
    examples = [line for name in names for line in help_examples(name)]
    assert len(examples) >= len(all_commands()) + 1
    for line in examples:
        proc = subprocess.run(["bash", "-c", "set -o pipefail; " + line], cwd=work, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"{line}\n{proc.stderr}"
        assert "Error" not in proc.stderr, f"{line}\n{proc.stderr}"


@pytest.mark.parametrize("name", all_commands())
def test_every_command_has_a_short_help_line(name):
    command: click.Command = cli.commands[name]
    assert command.get_short_help_str().strip()


def test_huge_params_are_refused_before_they_overflow():
    bad = dict(HW2.to_json(), x=[1e308, 1.0, 1.0])
    result = run("solve", "--params", "-", input=json.dumps(bad))
    assert result.exit_code == 1
    assert result.output == "Error: standard input: x: has a number larger than 1e+06 in size\n"


def test_an_empty_seed_is_a_usage_error():
    result = run("variant", "--seed", "", "--student", "x")
    assert result.exit_code == 2
    assert "the seed must not be empty" in result.output


# --- messages: the field of a bad number, user text escaped, wording, a full disk ----------------------


def hw2_text_with(literal: str) -> str:
    """The HW#2 parameters as JSON with v[2][2] (-0.4) written as ``literal``."""
    return json.dumps(HW2.to_json()).replace("-0.4", literal)


@pytest.mark.parametrize("command", ["solve", "key"])
@pytest.mark.parametrize(
    "literal,reason",
    [
        ("NaN", "NaN is not a number JSON allows; write a finite number"),
        ("-Infinity", "-Infinity is not a number JSON allows; write a finite number"),
        ("1e999", "1e999 is too large to be a finite number"),
    ],
)
def test_a_non_finite_number_in_a_params_file_names_its_entry(tmp_path, monkeypatch, command, literal, reason):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vnan.json").write_text(hw2_text_with(literal))
    result = run(command, "--params", "vnan.json")
    assert result.exit_code == 1
    assert result.output == f"Error: vnan.json: v[2][2]: {reason}\n"


def test_the_first_non_finite_number_of_the_text_is_the_one_named():
    text = hw2_text_with("1e999").replace('"lr": 0.1', '"lr": NaN')  # lr comes after v
    assert run("solve", "--params", "-", input=text).output == "Error: standard input: v[2][2]: 1e999 is too large to be a finite number\n"


def test_unknown_parameter_keys_are_warned_about_escaped_and_clipped():
    params = dict(HW2.to_json(), **{"\x1b[2Jevil": 1, "k" * 5000: 2})
    result = run("solve", "--params", "-", input=json.dumps(params))
    assert result.exit_code == 0
    assert result.stderr == "Warning: ignoring unknown parameter keys: \\x1b[2Jevil, " + "k" * 40 + "...\n"


def test_a_warning_names_at_most_ten_unknown_keys():
    params = dict(HW2.to_json(), **{f"extra{n:02}": n for n in range(12)})
    result = run("solve", "--params", "-", input=json.dumps(params))
    keys = ", ".join(f"extra{n:02}" for n in range(10))
    assert result.stderr == f"Warning: ignoring unknown parameter keys: {keys} and 2 more\n"


def test_a_file_name_in_an_error_is_escaped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("solve", "--params", "no\x1b[31mpe\n.json")
    assert result.exit_code == 1
    assert result.output == "Error: no\\x1b[31mpe\\n.json: cannot read the file: No such file or directory\n"


def test_a_long_file_name_in_an_error_keeps_its_two_ends(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("solve", "--params", "a" * 3000 + "z" * 2000)
    assert result.exit_code == 1
    assert result.output == "Error: " + "a" * 100 + "..." + "z" * 100 + ": cannot read the file: File name too long\n"


@pytest.mark.parametrize(
    "value,shown",
    [(None, "null"), (True, "true"), (1.5, "1.5"), ([1], "a list"), ({}, "an object"), ("elu\x1b[2J", "'elu\\x1b[2J'"), ("e" * 100, "'" + "e" * 40 + "...'")],
)
def test_an_unknown_activation_is_quoted_as_json_writes_it(value, shown):
    result = run("solve", "--params", "-", input=json.dumps(dict(HW2.to_json(), activation=value)))
    assert result.exit_code == 1
    assert result.output == f"Error: standard input: activation: must be one of elu, relu, leaky_relu, sigmoid, tanh; got {shown}\n"


@pytest.mark.parametrize("text", ["", " \n\t\r\n"])
def test_an_empty_params_file_says_it_is_empty(text):
    result = run("solve", "--params", "-", input=text)
    assert result.exit_code == 1
    assert result.output == "Error: standard input: the file is empty (no JSON in it)\n"


def test_a_control_character_in_a_string_is_worded_with_one_at():
    result = run("solve", "--params", "-", input='{"x": "a\x01b"}')
    assert result.output == "Error: standard input: not valid JSON: Invalid control character at line 1 column 9\n"


FULL_DISK = "Error: cannot write to standard output: No space left on device\n"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
@pytest.mark.parametrize(
    "args",
    [["solve"], ["solve", "--format", "json"], ["variant", "--seed", "s", "--student", "a"], ["key"], ["key", "--format", "tex"], ["solve", "--help"], ["--version"]],
    ids=lambda args: " ".join(args),
)
def test_a_full_disk_on_standard_output_is_one_error_line(args):
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "grader", *args], stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (1, FULL_DISK)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_a_full_disk_is_one_error_line_on_an_ascii_terminal_too():
    # click writes through a text wrapper of its own over standard output's bytes then
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "grader", "solve"], stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, env=env)
    assert (done.returncode, done.stderr) == (1, FULL_DISK)


def test_a_reader_that_has_gone_still_ends_the_command_quietly():
    reader, writer = os.pipe()
    os.close(reader)  # gone before hwgen writes a byte, as `hwgen solve | true` may be
    try:
        done = subprocess.run([sys.executable, "-m", "grader", "solve"], stdout=writer, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(writer)
    assert (done.returncode, done.stderr) == (1, "")
