# docker-py's push and pull with auth_config (sent as X-Registry-Auth) to a
# registry that requires a login: run by crates/cli/tests/api.rs
# (registry_auth_header) with the socket URL and the registry's address.
import sys

import docker

c = docker.DockerClient(base_url=sys.argv[1], version="auto")
reg = sys.argv[2]
repo = reg + "/api/py"
auth = {"username": "apiuser", "password": "apipass"}
assert c.images.get("busybox").tag(repo, "2")

# Without credentials the push fails, with the registry's error.
failed = False
for line in c.api.push(repo, tag="2", stream=True, decode=True):
    if "error" in line:
        failed = True
assert failed, "an unauthenticated push succeeded"

errors = [l for l in c.api.push(repo, tag="2", stream=True, decode=True, auth_config=auth) if "error" in l]
assert not errors, errors
c.images.remove(repo + ":2")
img = c.images.pull(repo, tag="2", auth_config=auth)
assert repo + ":2" in img.tags, img.tags
out = c.containers.run(repo + ":2", ["echo", "py-pulled"], network_mode="none", remove=True)
assert out == b"py-pulled\n", out
print("docker-py registry ok")
