FROM alpine
CMD ["only", 1]
