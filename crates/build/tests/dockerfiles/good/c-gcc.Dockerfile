FROM debian:bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY hello.c /src/
RUN gcc -static -O2 -o /hello /src/hello.c

FROM busybox:1.36
COPY --from=build --chmod=0755 /hello /bin/hello
CMD ["hello"]
