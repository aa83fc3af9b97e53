FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain domain
COPY application application
COPY projections projections
COPY interface interface
RUN pip install --no-cache-dir .
ENV KASAL_HOST=0.0.0.0 KASAL_PORT=8000
EXPOSE 8000
CMD ["kasal", "serve"]
