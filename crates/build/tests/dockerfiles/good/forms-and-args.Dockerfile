ARG A B=2 C="three four"
FROM scratch
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN ["echo", "exec form"]
RUN [not json]
CMD [ "a", "b\"c" ]
ENTRYPOINT exec /bin/app --flag
