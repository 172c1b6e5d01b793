# a comment, so directives end here
# escape=`
FROM alpine:3.20

   # an indented comment
run apk add --no-cache \
      curl \
      # a comment inside a continuation
      jq \

      git
  Copy . /src
RUN echo one \	 
    two
RUN echo "# not a comment" # nor this
ENV A=1 \
    # comment between pairs
    B=2
