"""mod_python.version: the mod_python release whose API mod_py provides, and where things are.

mod_python's configure wrote this file with the paths of the build; mod_py finds them at import
(each can be set by an environment variable). mod_python's test suite reads HTTPD, LIBEXECDIR,
TEST_MOD_PYTHON_SO and TESTHOME from here.
"""
import os
import shutil
import sys

version = "3.5.0"

_PYLIB = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HTTPD = os.environ.get("MOD_PYTHON_HTTPD") or shutil.which(
    "apache2", path="/usr/sbin:/usr/local/apache2/bin:/usr/local/sbin") or "/usr/sbin/apache2"
HTTPD_VERSION = "2.4"  # the httpd API mod_py is built for
APR_VERSION = "1"
PYTHON_VERSION = "%d.%d" % sys.version_info[:2]
LIBEXECDIR = os.environ.get("MOD_PYTHON_LIBEXECDIR", "/usr/lib/apache2/modules")
SYSCONFDIR = os.environ.get("MOD_PYTHON_SYSCONFDIR", "/etc/apache2")
# The module itself: in a source tree, the release build beside pylib/.
TEST_MOD_PYTHON_SO = os.environ.get("MOD_PYTHON_SO") or os.path.join(
    os.path.dirname(_PYLIB), "target", "release", "libmod_py.so")
TESTHOME = os.environ.get("MOD_PYTHON_TESTHOME") or os.getcwd()
