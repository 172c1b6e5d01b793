# escape=`
# Escape=`
FROM alpine
