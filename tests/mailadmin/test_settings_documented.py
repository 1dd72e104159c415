"""Every MAILADMIN_* environment variable the settings read is in the README's table.

Settings are added often (and by several people at once); a variable the
README does not name is one an admin cannot find. Names are matched spelled
out in full, in backticks, inside the "## Settings" section.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "mailadmin" / "settings.py", ROOT / "core" / "env.py"]
# The first argument of a call: env_str("MAILADMIN_X", ...), os.environ.get("MAILADMIN_X").
READ = re.compile(r"""\(\s*["'](MAILADMIN_[A-Z0-9_]+)["']""")


def read_variables() -> set[str]:
    return {name for path in SOURCES for name in READ.findall(path.read_text())}


def settings_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n## Settings\n")
    end = readme.find("\n## ", start + 1)
    return readme[start:end if end != -1 else None]


def test_the_settings_read_more_than_a_few_variables():
    # Guards the pattern above: a refactor of how settings are read must not
    # silently make the next test vacuous.
    assert {"MAILADMIN_DATA_DIR", "MAILADMIN_POSTFIX_QUEUE_DIR",
            "MAILADMIN_SECRET_KEY_FILE"} <= read_variables()


def test_every_variable_is_in_the_readme_settings_table():
    section = settings_section()
    missing = sorted(name for name in read_variables() if f"`{name}`" not in section)
    assert missing == [], f"add rows to README.md's Settings table for: {', '.join(missing)}"
