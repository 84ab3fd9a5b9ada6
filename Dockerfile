# wattflow's flows in a container (the servers come from docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY wattflow ./wattflow
COPY flows ./flows
COPY operators ./operators
COPY connectors ./connectors
COPY paper ./paper
COPY cli ./cli
COPY reports ./reports
COPY loadtest ./loadtest
COPY data ./data
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT []
CMD ["wattflow", "--help"]
