FROM alpine AS app
FROM debian AS APP
