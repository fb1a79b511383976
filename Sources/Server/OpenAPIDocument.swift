// A byte-identical copy of openapi.yaml (scripts/embed-openapi.sh writes it; OpenAPIDocumentTests
// checks it). Edit openapi.yaml, never this one.
enum OpenAPIDocument {
    static let yaml = ####"""
openapi: 3.1.0
info:
  title: lora
  version: "1"
  summary: LoRA fine-tuning, adapter registry and serving on CPU, in OpenAI's shapes.
  description: |
    Every route the `lora serve` binary registers. Errors are OpenAI's
    `{"error": {"message", "type", "param", "code"}}`. Once an API key exists (`lora keys create`),
    every /v1 route needs `Authorization: Bearer KEY`; the role each route needs is given as
    `x-lora-role` (inference < trainer < admin). /healthz, /readyz, /metrics and /openapi.yaml stay open.
    Lists are newest first, paged with `after` (the last id of the previous page) and `limit`.
    The job routes (create, list, retrieve, cancel, events, streamed events) answer with the
    registry's own records instead of OpenAI's shapes when the request says
    `Accept: application/vnd.lora.record+json` (what `lora ... --server` sends, so the CLI prints
    the same over HTTP as against the database): `JobRecord` and `JobEventRecord` below.
servers:
  - url: http://127.0.0.1:8080
security:
  - bearer: []
  - {}
paths:
  /v1/completions:
    post:
      operationId: createCompletion
      x-lora-role: inference
      summary: Text completion with the adapter the request's `model` names (base id, TASK, TASK@N, TASK@ALIAS).
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/CompletionRequest"}
      responses:
        "200":
          description: The completion, or server-sent `text_completion` chunks with `stream`.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Completion"}
            text/event-stream:
              schema: {type: string}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
        "413": {$ref: "#/components/responses/Error"}
        "429": {$ref: "#/components/responses/Error"}
        "503": {$ref: "#/components/responses/Error"}
  /v1/chat/completions:
    post:
      operationId: createChatCompletion
      x-lora-role: inference
      summary: Chat completion through the model's chat template.
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/ChatCompletionRequest"}
      responses:
        "200":
          description: The answer, or server-sent `chat.completion.chunk`s with `stream`.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ChatCompletion"}
            text/event-stream:
              schema: {type: string}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
        "413": {$ref: "#/components/responses/Error"}
        "429": {$ref: "#/components/responses/Error"}
        "503": {$ref: "#/components/responses/Error"}
  /v1/models:
    get:
      operationId: listModels
      x-lora-role: inference
      summary: The base model, then each task with a servable version (`parent` = the base).
      responses:
        "200":
          description: Models.
          content:
            application/json:
              schema:
                type: object
                required: [object, data]
                properties:
                  object: {const: list}
                  data:
                    type: array
                    items:
                      type: object
                      required: [id, object, created, owned_by]
                      properties:
                        id: {type: string}
                        object: {const: model}
                        created: {type: integer}
                        owned_by: {type: string}
                        parent: {type: [string, "null"]}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
  /v1/files:
    post:
      operationId: createFile
      x-lora-role: trainer
      summary: Upload a JSONL training or validation file; every record is checked (a bad line is a 400 naming line and field).
      requestBody:
        required: true
        content:
          multipart/form-data:
            schema:
              type: object
              required: [file, purpose]
              properties:
                file: {type: string, contentMediaType: application/octet-stream}
                purpose: {const: fine-tune}
      responses:
        "200":
          description: The stored file.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/File"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "413": {$ref: "#/components/responses/Error"}
    get:
      operationId: listFiles
      x-lora-role: trainer
      parameters:
        - {$ref: "#/components/parameters/AfterFile"}
        - {$ref: "#/components/parameters/Limit"}
        - {name: purpose, in: query, schema: {type: string}}
      responses:
        "200":
          description: Files, newest first.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/FileList"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
  /v1/files/{file_id}:
    parameters:
      - {name: file_id, in: path, required: true, schema: {type: string}, example: file-1}
    get:
      operationId: retrieveFile
      x-lora-role: trainer
      responses:
        "200":
          description: The file.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/File"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
    delete:
      operationId: deleteFile
      x-lora-role: trainer
      responses:
        "200":
          description: Deleted.
          content:
            application/json:
              schema:
                type: object
                required: [id, object, deleted]
                properties:
                  id: {type: string}
                  object: {const: file}
                  deleted: {type: boolean}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
        "409": {$ref: "#/components/responses/Error"}
  /v1/files/{file_id}/content:
    parameters:
      - {name: file_id, in: path, required: true, schema: {type: string, pattern: "^(file-)?[1-9][0-9]{0,17}$"}}
    get:
      operationId: retrieveFileContent
      x-lora-role: trainer
      responses:
        "200":
          description: The file's bytes.
          content:
            application/octet-stream:
              schema: {type: string, contentMediaType: application/octet-stream}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
  /v1/fine_tuning/jobs:
    post:
      operationId: createFineTuningJob
      x-lora-role: trainer
      summary: Queue a fine-tune of a registered base over uploaded files; the adapter becomes the next version of task `suffix`.
      parameters:
        - name: Idempotency-Key
          in: header
          description: A retried POST with the same key and body returns the first job; another body is a 409.
          schema: {type: string, minLength: 1, maxLength: 255}
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/CreateJob"}
      responses:
        "200":
          description: The queued job.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Job"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
        "409": {$ref: "#/components/responses/Error"}
        "413": {$ref: "#/components/responses/Error"}
    get:
      operationId: listFineTuningJobs
      x-lora-role: trainer
      parameters:
        - {$ref: "#/components/parameters/AfterJob"}
        - {$ref: "#/components/parameters/Limit"}
        - name: status
          in: query
          schema: {$ref: "#/components/schemas/JobStatus"}
        - name: task
          in: query
          description: Only jobs of this task (the `suffix` they were created with); a name that breaks the task rule is a 400.
          schema: {type: string, pattern: "^[a-z0-9][a-z0-9_-]{0,99}$"}
      responses:
        "200":
          description: Jobs, newest first.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/JobList"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
  /v1/fine_tuning/jobs/{job_id}:
    parameters:
      - {$ref: "#/components/parameters/JobId"}
    get:
      operationId: retrieveFineTuningJob
      x-lora-role: trainer
      responses:
        "200":
          description: The job.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Job"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
  /v1/fine_tuning/jobs/{job_id}/cancel:
    parameters:
      - {$ref: "#/components/parameters/JobId"}
    post:
      operationId: cancelFineTuningJob
      x-lora-role: trainer
      summary: Cancel a queued or running job (a running one stops within one optimizer step).
      responses:
        "200":
          description: The job afterwards.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Job"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
  /v1/fine_tuning/jobs/{job_id}/events:
    parameters:
      - {$ref: "#/components/parameters/JobId"}
    get:
      operationId: listFineTuningEvents
      x-lora-role: trainer
      parameters:
        - {$ref: "#/components/parameters/AfterEvent"}
        - {$ref: "#/components/parameters/Limit"}
        - name: stream
          in: query
          description: "true: server-sent events, oldest first (after `after`), live until the job is over, then `data: [DONE]`."
          schema: {type: string, enum: ["true", "false"]}
      responses:
        "200":
          description: Events newest first, or a live stream.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/EventList"}
            text/event-stream:
              schema: {type: string}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
  /v1/fine_tuning/jobs/{job_id}/loss.svg:
    parameters:
      - {$ref: "#/components/parameters/JobId"}
    get:
      operationId: lossPlot
      x-lora-role: trainer
      summary: The job's train loss per step and eval loss per evaluation against the step, as SVG.
      responses:
        "200":
          description: The plot.
          content:
            image/svg+xml:
              schema: {type: string}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
  /v1/fine_tuning/jobs/{job_id}/checkpoints:
    parameters:
      - {$ref: "#/components/parameters/JobId"}
    get:
      operationId: listFineTuningCheckpoints
      x-lora-role: trainer
      parameters:
        - {$ref: "#/components/parameters/AfterCheckpoint"}
        - {$ref: "#/components/parameters/Limit"}
      responses:
        "200":
          description: The stored checkpoints (a worker keeps the newest), with the losses logged at their step.
          content:
            application/json:
              schema:
                type: object
                required: [object, data, has_more]
                properties:
                  object: {const: list}
                  has_more: {type: boolean}
                  data:
                    type: array
                    items: {$ref: "#/components/schemas/Checkpoint"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
  /v1/tasks:
    get:
      operationId: listTasks
      x-lora-role: trainer
      responses:
        "200":
          description: Tasks by name.
          content:
            application/json:
              schema:
                type: object
                required: [object, data]
                properties:
                  object: {const: list}
                  data:
                    type: array
                    items: {$ref: "#/components/schemas/Task"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
  /v1/tasks/{task}:
    parameters:
      - {$ref: "#/components/parameters/Task"}
    get:
      operationId: retrieveTask
      x-lora-role: trainer
      responses:
        "200":
          description: "The task and its aliases, such as {production: 3, latest: 4}."
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Task"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
  /v1/tasks/{task}/versions:
    parameters:
      - {$ref: "#/components/parameters/Task"}
    get:
      operationId: listVersions
      x-lora-role: trainer
      parameters:
        - {name: include_archived, in: query, schema: {type: string, enum: ["true", "false"]}}
      responses:
        "200":
          description: Versions in order, with metrics and lineage.
          content:
            application/json:
              schema:
                type: object
                required: [object, data]
                properties:
                  object: {const: list}
                  data:
                    type: array
                    items: {$ref: "#/components/schemas/Version"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
    post:
      operationId: importVersion
      x-lora-role: admin
      summary: Import a tar of PEFT files at its root (what the adapter download gives) as the task's next version.
      parameters:
        - {name: base, in: query, description: "A registered base model's name (default: the task's, else the only one).", schema: {type: string}}
      requestBody:
        required: true
        content:
          application/x-tar:
            schema: {type: string, contentMediaType: application/x-tar}
      responses:
        "201":
          description: The new version.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Version"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
        "413": {$ref: "#/components/responses/Error"}
  /v1/tasks/{task}/versions/{version}:
    parameters:
      - {$ref: "#/components/parameters/Task"}
      - {$ref: "#/components/parameters/Version"}
    get:
      operationId: retrieveVersion
      x-lora-role: trainer
      responses:
        "200":
          description: The version.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Version"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
  /v1/tasks/{task}/versions/{version}/adapter:
    parameters:
      - {$ref: "#/components/parameters/Task"}
      - {$ref: "#/components/parameters/Version"}
    get:
      operationId: downloadAdapter
      x-lora-role: trainer
      summary: "The version's adapter: the registry's stored tar (PEFT files at its root; ETag is its sha256), or with format=gguf llama.cpp's GGUF LoRA layout."
      parameters:
        - {name: format, in: query, required: false, schema: {type: string, enum: [peft, gguf], default: peft}}
        - {name: dtype, in: query, required: false, description: "Tensor type of a GGUF adapter.", schema: {type: string, enum: [f32, f16], default: f32}}
      responses:
        "200":
          description: The adapter.
          content:
            application/x-tar:
              schema: {type: string, contentMediaType: application/x-tar}
            application/octet-stream:
              schema: {type: string, contentMediaType: application/octet-stream}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
  /v1/tasks/{task}/versions/{version}/archive:
    parameters:
      - {$ref: "#/components/parameters/Task"}
      - {$ref: "#/components/parameters/Version"}
    post:
      operationId: archiveVersion
      x-lora-role: admin
      summary: Archive a version (refused while an alias other than `latest` points at it).
      responses:
        "200":
          description: The archived version.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Version"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
        "409": {$ref: "#/components/responses/Error"}
  /v1/tasks/{task}/promote:
    parameters:
      - {$ref: "#/components/parameters/Task"}
    post:
      operationId: promote
      x-lora-role: admin
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [version]
              additionalProperties: false
              properties:
                version: {type: integer, minimum: 1, maximum: 2147483647}
                alias: {type: string, default: production, pattern: "^[a-z0-9][a-z0-9_-]{0,99}$"}
                reason: {type: string}
      responses:
        "200":
          description: The move (null when the alias already pointed there) and the task's aliases.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/AliasAnswer"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
        "409": {$ref: "#/components/responses/Error"}
  /v1/tasks/{task}/rollback:
    parameters:
      - {$ref: "#/components/parameters/Task"}
    post:
      operationId: rollback
      x-lora-role: admin
      requestBody:
        required: false
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              properties:
                alias: {type: string, default: production, pattern: "^[a-z0-9][a-z0-9_-]{0,99}$"}
                reason: {type: string}
      responses:
        "200":
          description: The move and the task's aliases.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/AliasAnswer"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
        "409": {$ref: "#/components/responses/Error"}
  /v1/tasks/{task}/history:
    parameters:
      - {$ref: "#/components/parameters/Task"}
    get:
      operationId: aliasHistory
      x-lora-role: trainer
      parameters:
        - {name: alias, in: query, schema: {type: string}}
      responses:
        "200":
          description: Every alias move, oldest first, with the API key that made it.
          content:
            application/json:
              schema:
                type: object
                required: [object, data]
                properties:
                  object: {const: list}
                  data:
                    type: array
                    items: {$ref: "#/components/schemas/AliasMove"}
        "400": {$ref: "#/components/responses/Error"}
        "401": {$ref: "#/components/responses/Error"}
        "403": {$ref: "#/components/responses/Error"}
        "404": {$ref: "#/components/responses/Error"}
  /metrics:
    get:
      operationId: metrics
      security: []
      responses:
        "200":
          description: Prometheus text.
          content:
            text/plain:
              schema: {type: string}
  /healthz:
    get:
      operationId: healthz
      security: []
      responses:
        "200":
          description: Up.
          content:
            application/json:
              schema: {type: object, properties: {status: {type: string}}}
  /readyz:
    get:
      operationId: readyz
      security: []
      responses:
        "200":
          description: Ready.
          content:
            application/json:
              schema: {type: object, properties: {status: {type: string}}}
        "503":
          description: Not ready or draining.
          content:
            application/json:
              schema: {type: object, properties: {status: {type: string}}}
  /openapi.yaml:
    get:
      operationId: openapi
      security: []
      responses:
        "200":
          description: This document.
          content:
            application/yaml:
              schema: {}
components:
  securitySchemes:
    bearer:
      type: http
      scheme: bearer
      description: "A key from `lora keys create NAME --role admin|trainer|inference` (lora- and 64 hex digits)."
  parameters:
    AfterFile:
      name: after
      in: query
      description: The last id of the previous page (lists are newest first).
      schema: {type: string, pattern: "^(file-)?[1-9][0-9]{0,17}$"}
    AfterJob:
      name: after
      in: query
      description: The last id of the previous page (lists are newest first).
      schema: {type: string, pattern: "^(ftjob-)?[1-9][0-9]{0,17}$"}
    AfterEvent:
      name: after
      in: query
      description: The last id of the previous page (lists are newest first).
      schema: {type: string, pattern: "^(ftevent-)?[1-9][0-9]{0,17}$"}
    AfterCheckpoint:
      name: after
      in: query
      description: The last id of the previous page (lists are newest first).
      schema: {type: string, pattern: "^(ftckpt-)?[1-9][0-9]{0,17}$"}
    Limit:
      name: limit
      in: query
      schema: {type: integer, minimum: 1, maximum: 100, default: 20}
    JobId:
      name: job_id
      in: path
      required: true
      schema: {type: string, pattern: "^(ftjob-)?[1-9][0-9]{0,17}$"}
      example: ftjob-1
    Task:
      name: task
      in: path
      required: true
      schema: {type: string, pattern: "^[a-z0-9][a-z0-9_-]{0,99}$"}
    Version:
      name: version
      in: path
      required: true
      schema: {type: integer, minimum: 1, maximum: 2147483647}
  responses:
    Error:
      description: OpenAI's error shape.
      content:
        application/json:
          schema: {$ref: "#/components/schemas/Error"}
  schemas:
    Error:
      type: object
      required: [error]
      properties:
        error:
          type: object
          required: [message, type, param, code]
          properties:
            message: {type: string}
            type: {type: string}
            param: {type: [string, "null"]}
            code: {type: [string, "null"]}
    CompletionRequest:
      type: object
      required: [model, prompt]
      properties:
        model: {type: string}
        prompt:
          oneOf:
            - {type: string}
            - {type: array, items: {type: string}}
        max_tokens: {type: integer, minimum: 0}
        temperature: {type: number, minimum: 0, maximum: 2}
        top_p: {type: number}
        top_k: {type: integer}
        seed: {type: integer}
        speculate: {type: integer, minimum: 0, maximum: 16, description: "Prompt-lookup draft tokens per step (0 off; default the server's --speculate). The output is the same tokens either way."}
        lookup_ngram: {type: integer, minimum: 1, maximum: 16, description: "Longest suffix n-gram looked up for drafts (default the server's --lookup-ngram)."}
        lookup_min_ngram: {type: integer, minimum: 1, maximum: 16, description: "Shortest suffix n-gram a draft may come from, at most lookup_ngram (default the server's --lookup-min-ngram, else 2 or lookup_ngram if smaller)."}
        ignore_eos: {type: boolean, description: "vLLM's extension: an end-of-sequence token does not end the answer (it is emitted as text); max_tokens, a stop string or the context does. Default false."}
        stop:
          oneOf:
            - {type: string}
            - {type: array, items: {type: string}}
        stream: {type: boolean}
        stream_options: {type: object, properties: {include_usage: {type: boolean}}}
    ChatCompletionRequest:
      type: object
      required: [model, messages]
      properties:
        model: {type: string}
        messages:
          type: array
          minItems: 1
          items:
            type: object
            required: [role, content]
            properties:
              role: {type: string, enum: [system, developer, user, assistant]}
              content:
                oneOf:
                  - {type: string}
                  - {type: array, items: {type: object}}
        max_tokens: {type: integer, minimum: 0}
        max_completion_tokens: {type: integer, minimum: 0}
        temperature: {type: number, minimum: 0, maximum: 2}
        top_p: {type: number}
        top_k: {type: integer}
        seed: {type: integer}
        speculate: {type: integer, minimum: 0, maximum: 16, description: "Prompt-lookup draft tokens per step (0 off; default the server's --speculate). The output is the same tokens either way."}
        lookup_ngram: {type: integer, minimum: 1, maximum: 16, description: "Longest suffix n-gram looked up for drafts (default the server's --lookup-ngram)."}
        lookup_min_ngram: {type: integer, minimum: 1, maximum: 16, description: "Shortest suffix n-gram a draft may come from, at most lookup_ngram (default the server's --lookup-min-ngram, else 2 or lookup_ngram if smaller)."}
        ignore_eos: {type: boolean, description: "vLLM's extension: an end-of-sequence token does not end the answer (it is emitted as text); max_tokens, a stop string or the context does. Default false."}
        stop:
          oneOf:
            - {type: string}
            - {type: array, items: {type: string}}
        stream: {type: boolean}
        stream_options: {type: object, properties: {include_usage: {type: boolean}}}
    Usage:
      type: object
      required: [prompt_tokens, completion_tokens, total_tokens]
      properties:
        prompt_tokens: {type: integer}
        completion_tokens: {type: integer}
        total_tokens: {type: integer}
    Completion:
      type: object
      required: [id, object, created, model, choices, usage]
      properties:
        id: {type: string}
        object: {const: text_completion}
        created: {type: integer}
        model: {type: string}
        choices:
          type: array
          items:
            type: object
            properties:
              index: {type: integer}
              text: {type: string}
              logprobs: {type: "null"}
              finish_reason: {type: string, enum: [stop, length]}
        usage: {$ref: "#/components/schemas/Usage"}
    ChatCompletion:
      type: object
      required: [id, object, created, model, choices, usage]
      properties:
        id: {type: string}
        object: {const: chat.completion}
        created: {type: integer}
        model: {type: string}
        choices:
          type: array
          items:
            type: object
            properties:
              index: {type: integer}
              message:
                type: object
                properties:
                  role: {const: assistant}
                  content: {type: string}
              logprobs: {type: "null"}
              finish_reason: {type: string, enum: [stop, length]}
        usage: {$ref: "#/components/schemas/Usage"}
    File:
      type: object
      required: [object, id, bytes, created_at, filename, purpose, status]
      properties:
        object: {const: file}
        id: {type: string, example: file-1}
        bytes: {type: integer}
        created_at: {type: integer}
        filename: {type: string}
        purpose: {const: fine-tune}
        status: {const: processed}
        status_details: {type: "null"}
        sha256: {type: string, pattern: "^[0-9a-f]{64}$"}
        records: {type: integer}
    FileList:
      type: object
      required: [object, data, has_more]
      properties:
        object: {const: list}
        has_more: {type: boolean}
        data:
          type: array
          items: {$ref: "#/components/schemas/File"}
    AutoOrInteger:
      oneOf:
        - {const: auto}
        - {type: integer}
    AutoOrNumber:
      oneOf:
        - {const: auto}
        - {type: number}
    Hyperparameters:
      type: object
      additionalProperties: false
      description: Each value may be "auto" (lora train's default). learning_rate_multiplier multiplies 2e-4.
      properties:
        n_epochs: {$ref: "#/components/schemas/AutoOrInteger"}
        batch_size: {$ref: "#/components/schemas/AutoOrInteger"}
        learning_rate:
          oneOf:
            - {const: auto}
            - {type: number, exclusiveMinimum: 0, exclusiveMaximum: 1}
        learning_rate_multiplier:
          oneOf:
            - {const: auto}
            - {type: number, exclusiveMinimum: 0, exclusiveMaximum: 5000}
        lora_r: {$ref: "#/components/schemas/AutoOrInteger"}
        lora_alpha: {$ref: "#/components/schemas/AutoOrNumber"}
        lora_dropout: {$ref: "#/components/schemas/AutoOrNumber"}
        target_modules:
          oneOf:
            - {type: string, enum: [auto, all-linear]}
            - {type: array, items: {type: string, enum: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]}}
        max_seq_len: {$ref: "#/components/schemas/AutoOrInteger"}
        max_steps: {$ref: "#/components/schemas/AutoOrInteger"}
        checkpoint_every: {$ref: "#/components/schemas/AutoOrInteger"}
        use_rslora: {type: boolean, description: "rsLoRA scaling alpha / sqrt(r) (lora train --rslora)."}
        gradient_accumulation_steps: {$ref: "#/components/schemas/AutoOrInteger"}
        lr_scheduler: {type: string, enum: [auto, constant, constant_with_warmup, linear, cosine]}
        warmup_steps: {$ref: "#/components/schemas/AutoOrInteger"}
        warmup_ratio: {$ref: "#/components/schemas/AutoOrNumber"}
        weight_decay: {$ref: "#/components/schemas/AutoOrNumber"}
        max_grad_norm: {$ref: "#/components/schemas/AutoOrNumber", description: 0 disables clipping.}
        shuffle: {type: boolean}
        eval_every: {$ref: "#/components/schemas/AutoOrInteger"}
        packing: {type: boolean}
        gradient_checkpointing: {type: boolean}
        max_bad_steps: {$ref: "#/components/schemas/AutoOrInteger"}
        quant: {type: string, enum: [auto, keep, nf4, int8, none], description: How the worker holds the base's linear weights.}
    CreateJob:
      type: object
      required: [model, training_file, suffix]
      additionalProperties: false
      properties:
        model: {type: string, description: A registered base model's name.}
        training_file: {type: string, pattern: "^(file-)?[1-9][0-9]{0,17}$", example: file-1}
        validation_file: {type: string, pattern: "^(file-)?[1-9][0-9]{0,17}$"}
        suffix: {type: string, pattern: "^[a-z0-9][a-z0-9_-]{0,99}$", description: The task the adapter becomes a version of.}
        seed: {type: integer}
        hyperparameters: {$ref: "#/components/schemas/Hyperparameters"}
        method:
          type: object
          properties:
            type: {const: supervised}
            supervised:
              type: object
              properties:
                hyperparameters: {$ref: "#/components/schemas/Hyperparameters"}
        auto_promote: {type: boolean}
        promote_if_better: {type: boolean}
        max_attempts: {type: integer, minimum: 1, maximum: 100, description: Attempts before the job fails (default 3).}
        metadata: {type: object, additionalProperties: {type: string}}
        integrations: {type: array, maxItems: 0}
    JobRecord:
      type: object
      description: "A job as the registry stores it (Accept: application/vnd.lora.record+json); times are ISO 8601."
      required: [id, task, base, status, attempt, max_attempts, hyperparameters, data_name, data_sha256, data_size, created_by, created_at]
      properties:
        id: {type: integer}
        task: {type: string}
        base: {type: string}
        status: {type: string, enum: [queued, running, succeeded, failed, cancelled]}
        attempt: {type: integer}
        max_attempts: {type: integer}
        worker: {type: [string, "null"]}
        heartbeat_at: {type: [string, "null"]}
        hyperparameters: {type: object}
        data_name: {type: string}
        data_sha256: {type: string}
        data_size: {type: integer}
        eval_data_name: {type: [string, "null"]}
        eval_data_sha256: {type: [string, "null"]}
        error: {type: [string, "null"]}
        version: {type: [integer, "null"]}
        auto_promote: {type: boolean}
        promote_if_better: {type: boolean}
        created_by: {type: string}
        created_at: {type: string}
        started_at: {type: [string, "null"]}
        finished_at: {type: [string, "null"]}
        next_attempt_at: {type: string}
    JobEventRecord:
      type: object
      description: "A job event as the registry stores it (Accept: application/vnd.lora.record+json)."
      required: [id, job, attempt, at, level, type, message, data]
      properties:
        id: {type: integer}
        job: {type: integer}
        attempt: {type: integer}
        at: {type: string}
        level: {type: string, enum: [debug, info, warning, error]}
        type: {type: string, enum: [message, metrics]}
        message: {type: string}
        data: {type: object, description: "Metrics as the worker logs them: step, total_steps, loss, lr, grad_norm, tokens_per_s; eval_loss."}
    JobStatus:
      type: string
      enum: [validating_files, queued, running, succeeded, failed, cancelled]
    Job:
      type: object
      required: [object, id, model, created_at, status, training_file, hyperparameters]
      properties:
        object: {const: fine_tuning.job}
        id: {type: string, example: ftjob-1}
        model: {type: string}
        created_at: {type: integer}
        finished_at: {type: [integer, "null"]}
        fine_tuned_model: {type: [string, "null"], description: TASK@N once succeeded.}
        organization_id: {type: string}
        result_files: {type: array, items: {type: string}}
        status: {$ref: "#/components/schemas/JobStatus"}
        validation_file: {type: [string, "null"]}
        training_file: {type: string}
        hyperparameters: {type: object}
        trained_tokens: {type: [integer, "null"]}
        error:
          oneOf:
            - {type: "null"}
            - type: object
              properties:
                code: {type: string}
                message: {type: string}
                param: {type: [string, "null"]}
        user_provided_suffix: {type: string}
        seed: {type: integer}
        estimated_finish: {type: "null"}
        integrations: {type: array}
        metadata: {type: [object, "null"]}
        method: {type: object}
    JobList:
      type: object
      required: [object, data, has_more]
      properties:
        object: {const: list}
        has_more: {type: boolean}
        data:
          type: array
          items: {$ref: "#/components/schemas/Job"}
    Event:
      type: object
      required: [object, id, created_at, level, message, type]
      properties:
        object: {const: fine_tuning.job.event}
        id: {type: string}
        created_at: {type: integer}
        level: {type: string, enum: [info, warn, error]}
        message: {type: string}
        type: {type: string, enum: [message, metrics]}
        data:
          type: object
          description: "Step metrics: step, total_steps, train_loss, valid_loss, lr, grad_norm, tokens_per_s."
    EventList:
      type: object
      required: [object, data, has_more]
      properties:
        object: {const: list}
        has_more: {type: boolean}
        data:
          type: array
          items: {$ref: "#/components/schemas/Event"}
    Checkpoint:
      type: object
      required: [object, id, created_at, fine_tuning_job_id, metrics, step_number]
      properties:
        object: {const: fine_tuning.job.checkpoint}
        id: {type: string}
        created_at: {type: integer}
        fine_tuned_model_checkpoint: {type: string}
        fine_tuning_job_id: {type: string}
        metrics:
          type: object
          properties:
            step: {type: integer}
            train_loss: {type: [number, "null"]}
            valid_loss: {type: [number, "null"]}
        step_number: {type: integer}
    Task:
      type: object
      required: [name, aliases, versions, created_at]
      properties:
        name: {type: string}
        aliases: {type: object, additionalProperties: {type: integer}}
        versions: {type: integer}
        created_at: {type: string}
    Version:
      type: object
      required: [task, version, base, sha256]
      properties:
        task: {type: string}
        version: {type: integer}
        base: {type: string}
        sha256: {type: string}
        size: {type: integer}
        metrics: {type: object, additionalProperties: {type: number}}
        lora_config: {type: object}
        hyperparameters: {type: object}
        job_id: {type: [integer, "null"]}
        data_sha256: {type: [string, "null"]}
        source: {type: [string, "null"]}
        tags: {type: object, additionalProperties: {type: string}}
        aliases: {type: array, items: {type: string}}
        archived: {type: boolean}
        created_by: {type: string}
        created_at: {type: string}
    AliasMove:
      type: object
      required: [id, task, alias, action, actor, created_at]
      properties:
        id: {type: integer}
        task: {type: string}
        alias: {type: string}
        from_version: {type: integer}
        to_version: {type: integer}
        action: {type: string, enum: [promote, rollback, auto]}
        actor: {type: string}
        reason: {type: string}
        api_key: {type: [string, "null"], description: The API key whose request moved the alias.}
        created_at: {type: string}
    AliasAnswer:
      type: object
      required: [task]
      properties:
        task: {$ref: "#/components/schemas/Task"}
        move:
          oneOf:
            - {type: "null"}
            - {$ref: "#/components/schemas/AliasMove"}
"""####
}
