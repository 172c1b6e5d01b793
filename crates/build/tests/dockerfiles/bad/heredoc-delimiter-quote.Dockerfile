FROM alpine
COPY <<'EOF /etc/x
x
EOF
