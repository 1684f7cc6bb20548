import os
VALUE = "preloaded"
PID = os.getpid()
