# kumocore in a container: core and the built-in plugins installed from wheels, running the
# bundled default policy as an unprivileged user. Build and run:
#   docker build -t kumocore .
#   docker run -p 2025:2025 -p 8000:8000 kumocore
# Mount your own policy and serve it instead:
#   docker run -v $PWD/policy.lua:/etc/kumocore/policy.lua kumocore \
#       serve --policy /etc/kumocore/policy.lua
# It runs one worker per CPU the container may use (--cpuset-cpus); a quota (--cpus 2) does
# not limit that set, so say the number then: docker run -e KUMOCORE_WORKERS=2 ...
FROM python:3.11-slim
COPY . /src
# wamerican: the word list of kumo.string.normalize_smtp_response.
RUN apt-get update && apt-get install -y --no-install-recommends wamerican \
    && rm -rf /var/lib/apt/lists/* \
    && /src/scripts/install-wheels.sh /opt/kumocore python3 \
    && rm -rf /src \
    && useradd --system --home-dir /var/lib/kumocore --create-home kumocore \
    && chmod 0700 /var/lib/kumocore
ENV PATH=/opt/kumocore/bin:$PATH \
    KUMOCORE_VAR=/var/lib/kumocore \
    KUMOCORE_SMTP_LISTEN=0.0.0.0:2025 \
    KUMOCORE_HTTP_LISTEN=0.0.0.0:8000
USER kumocore
WORKDIR /var/lib/kumocore
EXPOSE 2025 8000
ENTRYPOINT ["kumocore"]
CMD ["serve", "--policy", "/opt/kumocore/lib/python3.11/site-packages/kumocore/defaults/default-policy.lua"]
