FROM debian:bookworm
RUN <<EOF
#!/usr/bin/env bash
set -euo pipefail
echo "building in $PWD"
EOF
RUN <<-EOT bash
	echo tabs are stripped
		echo even two
	EOT
COPY <<EOF /etc/app.conf
listen = 8080
home = $HOME
EOF
RUN python3 <<'PY'
print("$NOT_EXPANDED")
PY
RUN cat <<A >/a && cat <<"B" >/b
first
A
second
B
COPY --chmod=0755 <<run.sh <<"cfg" /usr/local/bin/
#!/bin/sh
exec app
run.sh
x=1
cfg
ONBUILD RUN <<EOF
echo child
EOF
RUN echo "<<NOT" && echo $((1<<3))
