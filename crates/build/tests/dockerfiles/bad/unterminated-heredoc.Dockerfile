FROM alpine
RUN echo ok
RUN <<EOF
echo never closed
EOF2
