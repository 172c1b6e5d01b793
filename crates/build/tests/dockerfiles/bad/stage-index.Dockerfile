FROM alpine
FROM scratch
COPY --from=2 /x /x
