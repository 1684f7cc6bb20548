"""Configuration and logging: reads its settings from PythonOption lines with
req.get_options(), and logs with Python's logging module, which mod_py routes to Apache's
error log at the matching level (INFO lines show with LogLevel info). print() and
sys.stderr go to the error log too.

    <Location /options>
        SetHandler modpy
        PythonHandler options_logging
        PythonOption greeting "Hello from PythonOption"
        PythonOption repeat 2
    </Location>
"""
import logging

from modpy import apache

log = logging.getLogger("examples.options")


def handler(req):
    options = req.get_options()
    greeting = options.get("greeting", "Hello")
    try:
        repeat = int(options.get("repeat", "1"))
    except ValueError:
        log.warning("PythonOption repeat=%r is not a number; using 1", options.get("repeat"))
        repeat = 1

    log.info("serving %s with %d option(s)", req.uri, len(options))
    # mod_python's own call works too: apache.log_error(message, level)
    apache.log_error(f"options example: greeting={greeting!r}", apache.APLOG_NOTICE)

    req.content_type = "text/plain; charset=utf-8"
    lines = [greeting] * max(0, min(repeat, 100))
    lines.append("")
    lines.append("PythonOption values of this <Location> (req.get_options()):")
    lines.extend(f"  {k} = {v}" for k, v in sorted(options.items()))
    req.write("\n".join(lines) + "\n")
    return apache.OK
