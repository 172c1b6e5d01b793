FROM alpine AS build
FROM scratch
COPY --form=build /a /a
