import hashlib
import os
import sys
import time

from django.conf import settings
from django.http import (FileResponse, HttpResponse, JsonResponse, StreamingHttpResponse)
from django.middleware.csrf import get_token
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST


def index(request):
    return HttpResponse("Hello from Django\n", content_type="text/plain; charset=utf-8")


def info(request):
    return JsonResponse({
        "prefix": sys.prefix, "os_file": os.__file__, "script_name": request.META["SCRIPT_NAME"],
        "path": request.path, "path_info": request.path_info,
        "absolute": request.build_absolute_uri(), "index_url": reverse("index"),
        "upload_url": reverse("upload"),
    })


def form(request):
    if request.method == "GET":
        token = get_token(request)
        return HttpResponse(
            f'<form method="post" action="{reverse("form")}">'
            f'<input type="hidden" name="csrfmiddlewaretoken" value="{token}">'
            '<input name="name"><input name="tags"></form>\n')
    fields = {k: request.POST.getlist(k) for k in request.POST if k != "csrfmiddlewaretoken"}
    return JsonResponse({"form": fields, "content_type": request.content_type})


@csrf_exempt
@require_POST
def upload(request):
    files = []
    for field, items in request.FILES.lists():
        for f in items:
            h = hashlib.sha256()
            size = 0
            for chunk in f.chunks(1 << 16):
                h.update(chunk)
                size += len(chunk)
            files.append({"field": field, "filename": f.name, "content_type": f.content_type,
                          "size": size, "sha256": h.hexdigest(), "kind": type(f).__name__})
    return JsonResponse({"files": files, "form": {k: request.POST.getlist(k) for k in request.POST}})


def set_cookie(request):
    response = redirect("cookies")
    response.set_cookie("flavour", request.GET.get("flavour", "plain"), httponly=True,
                        samesite="Lax")
    request.session["visits"] = request.session.get("visits", 0) + 1
    return response


def show_cookies(request):
    request.session["visits"] = request.session.get("visits", 0) + 1
    cookies = {k: v for k, v in request.COOKIES.items() if k not in ("sessionid", "csrftoken")}
    return JsonResponse({"cookies": cookies, "visits": request.session["visits"]})


def go_home(request):
    return redirect("index")


def stream(request):
    n = int(request.GET.get("n", "100"))
    delay = float(request.GET.get("delay", "0"))
    tag = request.GET.get("tag", "")

    def generate():
        for i in range(n):
            if delay:
                time.sleep(delay)
            yield f"line {i:04d} {tag}\n".encode()

    return StreamingHttpResponse(generate(), content_type="text/plain")


def download(request):
    return FileResponse(open(settings.DATA, "rb"), as_attachment=request.GET.get("attach") == "1",
                        filename="data.bin")


def boom(request):
    raise ZeroDivisionError("django view exploded on purpose")


def echo_args(request):
    body = "".join(f"{k}={v}\n" for k, vs in request.GET.lists() for v in vs)
    return HttpResponse(body, content_type="text/plain; charset=utf-8")


def echo_path(request, name):
    return HttpResponse(name, content_type="text/plain; charset=utf-8")
