# WSGIScriptAlias target: flask_demo is found through WSGIPythonPath (the directory of this file).
from flask_demo import app as application  # noqa: F401
