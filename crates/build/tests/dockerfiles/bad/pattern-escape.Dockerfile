FROM alpine
ENV FILE=a.tar.gz
ENV BASE=${FILE%\.tar.gz}
