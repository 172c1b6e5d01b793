FROM alpine
LABEL a='x
