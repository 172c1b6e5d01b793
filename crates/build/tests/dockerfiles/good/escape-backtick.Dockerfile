# escape=`

FROM mcr.microsoft.com/windows/servercore:ltsc2022
COPY testfile.txt c:\
RUN dir c:\ `
    && echo done
ENV TOOLS=c:\tools `
    LABEL=`$notavar
WORKDIR c:\Users\app
RUN ["powershell", "-Command", "Get-ChildItem c:\\"]
