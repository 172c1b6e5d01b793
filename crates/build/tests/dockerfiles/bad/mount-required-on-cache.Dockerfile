FROM alpine
RUN --mount=type=cache,target=/c,required make
