FROM alpine AS src
FROM alpine
ARG STAGE=src
RUN --mount=type=bind,from=$STAGE,target=/s ls /s
