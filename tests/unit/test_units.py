"""The systemd units in deploy/systemd run the programs as supervisord.conf runs them."""
import configparser
import shlex

from webapp.config import ROOT


def _read(path):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read(path)
    return parser


def test_each_unit_runs_its_program_as_supervisord_does():
    supervisord = _read(ROOT / "supervisord.conf")
    for program in ("web", "worker", "flower"):
        unit = _read(ROOT / "deploy" / "systemd" / f"spillway-{program}.service")
        command = shlex.split(unit["Service"]["ExecStart"])
        expected = shlex.split(supervisord[f"program:{program}"]["command"])
        assert command[0].endswith(f"/.venv/bin/{expected[0]}"), (program, command)
        # the same arguments, but for the ones supervisord fills from make run's environment
        fixed = [a for a in expected[1:] if "%(ENV_" not in a and "%%h" not in a]
        assert [a for a in command[1:] if a in fixed] == fixed, (program, command, fixed)
        assert unit["Service"]["Restart"] == "always" and unit["Service"]["KillSignal"] == "SIGTERM"
        assert "/etc/spillway/spillway.env" in unit["Service"]["EnvironmentFile"]
