FROM node:20
MAINTAINER Jane Doe <jane@example.com>
ONBUILD COPY package*.json ./
ONBUILD RUN npm install
onbuild ADD . /app/src
STOPSIGNAL SIGQUIT
VOLUME /data /logs
VOLUME ["/cache"]
