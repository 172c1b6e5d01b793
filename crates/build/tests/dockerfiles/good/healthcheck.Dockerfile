FROM nginx:1.27 AS web
HEALTHCHECK --interval=1m30s --timeout=10s --start-period=5s --start-interval=500ms --retries=5 \
  CMD ["curl", "-f", "http://localhost/"]

FROM web AS quiet
HEALTHCHECK NONE

FROM web
HEALTHCHECK CMD curl -f http://localhost/ || exit 1
