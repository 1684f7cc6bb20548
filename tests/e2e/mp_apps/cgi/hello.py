import os
import sys

print("Content-Type: text/plain")
print("X-Cgi: yes")
print()
print("cgi says hello to", os.environ.get("QUERY_STRING"))
data = sys.stdin.read()
print("body:", data)
