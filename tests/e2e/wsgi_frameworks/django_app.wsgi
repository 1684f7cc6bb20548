# WSGIScriptAlias target: the Django project is put on sys.path here, as its docs show.
import os
import sys

project = os.path.join(os.path.dirname(os.path.abspath(__file__)), "djdemo")
if project not in sys.path:
    sys.path.insert(0, project)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djdemo.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
