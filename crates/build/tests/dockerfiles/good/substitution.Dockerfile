ARG BASE=alpine
ARG TAG
FROM ${BASE}:${TAG:-3.20} AS base
ARG BASE
ARG PREFIX=/opt
ENV APP_HOME=${PREFIX}/app \
    FILE=/usr/local/lib/archive.tar.gz
ENV NAME="${BASE} image" UNSET_DEFAULT=${NOPE:-fallback} SET_ALT=${BASE:+yes} UNSET_ALT=${NOPE:+no}
ENV EMPTY= COLON_EMPTY=${EMPTY:-was-empty} DASH_EMPTY=${EMPTY-kept-empty}
ENV BASENAME=${FILE##*/} DIRNAME=${FILE%/*} NOEXT=${FILE%%.*} TRIM=${FILE#/usr/}
ENV LITERAL=\$APP_HOME SINGLE='$APP_HOME' DOUBLE="$APP_HOME" MIXED=a'$b'"$BASE"\ c
LABEL description="${NAME} at ${APP_HOME}" "version"=${TAG:-none}
WORKDIR $APP_HOME/bin
EXPOSE ${PORT:-8080}/tcp
USER ${USER_ID:-1000}:${GROUP_ID:-1000}
VOLUME ${APP_HOME}/data
STOPSIGNAL ${SIG:-SIGTERM}
COPY --chown=${USER_ID:-1000} ${PREFIX}/src/ $APP_HOME/
RUN echo "$APP_HOME is not expanded by the builder"
CMD ["echo", "$APP_HOME"]
