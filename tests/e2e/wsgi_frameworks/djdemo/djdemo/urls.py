from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("info/", views.info, name="info"),
    path("form/", views.form, name="form"),
    path("upload/", views.upload, name="upload"),
    path("cookies/set/", views.set_cookie, name="set_cookie"),
    path("cookies/", views.show_cookies, name="cookies"),
    path("redirect/", views.go_home, name="redirect"),
    path("stream/", views.stream, name="stream"),
    path("file/", views.download, name="file"),
    path("boom/", views.boom, name="boom"),
    path("echo/", views.echo_args, name="echo"),
    path("path/<str:name>/", views.echo_path, name="path"),
]
