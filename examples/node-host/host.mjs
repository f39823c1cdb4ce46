// A second host for the vector-service component: Node.js through jco.
//
//   node host.mjs GENERATED_DIR FIXTURE_JSON
//
// GENERATED_DIR is the output of
// `jco transpile vector-service.wasm --name vector-service --instantiation async -o GENERATED_DIR`.
// The backends the component imports are implemented here in JavaScript: a retriever that
// answers from the fixture, in-memory metrics databases and embedding store, telemetry that
// counts into an object, logging to stderr. Runs the four operations and prints one JSON
// document (stdout) in the shape the Rust test compares with the wasmtime host's results.

import { readFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [generatedDir, fixturePath] = process.argv.slice(2);
if (!generatedDir || !fixturePath) {
  console.error('usage: node host.mjs GENERATED_DIR FIXTURE_JSON');
  process.exit(2);
}
const fixture = JSON.parse(await readFile(fixturePath, 'utf8'));

/** Thrown from an import, jco turns `payload` into the `err` case of its result. */
const backendError = (tag, message) => Object.assign(new Error(message), { payload: { tag, val: message } });

// embedding-store: records per database, embedded when their text is non-blank.
const databases = new Map();
for (const doc of fixture.documents) {
  if (!databases.has(doc.db)) databases.set(doc.db, new Map());
  databases.get(doc.db).set(doc.id, { ...doc, embedded: false });
}
const embeddingStore = {
  databases: () => [...databases.keys()].sort(),
  pending(db, after, limit) {
    const records = databases.get(db);
    if (!records) throw backendError('failed', `unknown database "${db}"`);
    return [...records.keys()].sort()
      .filter((id) => (after === undefined || id > after) && !records.get(id).embedded)
      .slice(0, limit);
  },
  embed(db, ids) {
    const records = databases.get(db);
    if (!records) throw backendError('failed', `unknown database "${db}"`);
    let embedded = 0, skipped = 0;
    for (const id of ids) {
      const record = records.get(id);
      if (record && record.text.trim() !== '') { record.embedded = true; embedded += 1; } else { skipped += 1; }
    }
    return { embedded, skipped };
  },
};

// retriever-backend: the fixture's hits for a query, best first, at most top-k.
// The record id a hit's metadata names (the WIT's backend-hit.record-id): the first of these
// keys present and not null, as text; none when that is an array or object.
const RECORD_ID_KEYS = ['id', 'wid', 'bid', 'record_id', 'info_id', 'item_id'];
const recordId = (metadata) => {
  const key = RECORD_ID_KEYS.find((k) => metadata[k] !== undefined && metadata[k] !== null);
  const value = key === undefined ? undefined : metadata[key];
  return ['string', 'number', 'boolean'].includes(typeof value) ? String(value) : undefined;
};

// An answer's handle (the WIT's `answer` resource): the host keeps the hits it handed out, so
// the component caches them by handle instead of sending them back.
class Answer {
  constructor(hits) { this.hits = hits; }
}
const retrieverBackend = {
  Answer,
  search(query, topK, origins) {
    const hits = (fixture.searches[query] ?? [])
      .filter((hit) => origins.length === 0 || origins.includes(hit.origin_db))
      .slice(0, topK)
      .map((hit) => ({ originDb: hit.origin_db, id: hit.id, recordId: recordId(hit.metadata), score: hit.score, reason: hit.reason, metadata: JSON.stringify(hit.metadata) }));
    return [{ hits, confidence: undefined }, new Answer(hits)];
  },
};

// metrics-db and vector-metrics-db in memory.
const patchOutcomes = [];
const retrieverStats = {};
const vectorOutcomes = [];
const metricsDb = {
  available: () => true,
  logPatchOutcome(outcome) {
    for (const row of outcome.contributors) patchOutcomes.push({ ...outcome, ...row });
    for (const origin of outcome.creditedOrigins) {
      const stats = (retrieverStats[origin] ??= { wins: 0, regrets: 0 });
      if (outcome.success) stats.wins += 1; else stats.regrets += 1;
    }
  },
};
const rates = (outcomes) => outcomes.length === 0 ? undefined : {
  winRate: outcomes.filter((o) => o.win).length / outcomes.length,
  regretRate: outcomes.filter((o) => o.regret).length / outcomes.length,
  samples: BigInt(outcomes.length),
};
const vectorMetricsDb = {
  recordOutcomes: (outcomes) => { vectorOutcomes.push(...outcomes); },
  vectorRates: (vectors) => vectors.map((v) => rates(vectorOutcomes.filter((o) => o.vector.originDb === v.originDb && o.vector.vectorId === v.vectorId))),
  originRates: (origins) => origins.map((origin) => rates(vectorOutcomes.filter((o) => o.vector.originDb === origin))),
};

// telemetry: counts per metric and label, like a tiny Prometheus registry.
const metrics = {};
const count = (name, label) => { metrics[name] ??= {}; metrics[name][label] = (metrics[name][label] ?? 0) + 1; };
const telemetry = {
  // A call's phases: its start and end (or error) log lines, and its call metrics at the end.
  recordCall(event) {
    const line = `${event.operation} ${event.phase} session=${event.sessionId}`;
    console.error(event.failure ? `[error] ${line} ${event.failure.kind}: ${event.failure.message}` : `[info] ${line}`);
    if (event.phase === 'start') return;
    count('vector_service_calls_total', event.operation);
    if (event.failure) count('vector_service_errors_total', `${event.operation}/${event.failure.kind}`);
  },
  observe(sample) {
    if (sample.tag === 'patch-tracked') count('patch_logger_track_contributors_total', sample.val.status);
    if (sample.tag === 'backfill-run') count('embedding_backfill_runs_total', sample.val.status);
  },
};

const cache = new Map();
const started = process.hrtime.bigint();
const imports = {
  'wasi:logging/logging': {
    log: (level, context, message) => console.error(`[${level}] ${message} ${context}`),
  },
  'vector-service:plugin/clock': {
    monotonicNow: () => process.hrtime.bigint() - started,
    wallNowMs: () => BigInt(Date.now()),
    backoff: () => {},
  },
  'vector-service:plugin/ids': { newSessionId: () => randomUUID() },
  'vector-service:plugin/telemetry': telemetry,
  'vector-service:plugin/result-cache': {
    getHits: (key) => cache.get(`search/${key}`),
    putAnswer: (key, answer) => { cache.set(`search/${key}`, answer.hits); },
    getContext: (key) => cache.get(`context/${key}`),
    putContext: (key, value) => { cache.set(`context/${key}`, value); },
  },
  'vector-service:plugin/types': {},
  'vector-service:plugin/retriever-backend': retrieverBackend,
  'vector-service:plugin/metrics-db': metricsDb,
  'vector-service:plugin/vector-metrics-db': vectorMetricsDb,
  'vector-service:plugin/embedding-store': embeddingStore,
};

// jco looks imports up by interface name without the version.
const dir = resolve(generatedDir);
const { instantiate } = await import(pathToFileURL(join(dir, 'vector-service.js')).href);
const component = await instantiate(
  async (path) => WebAssembly.compile(await readFile(join(dir, path))),
  imports,
);

const calls = fixture.calls;
const session = calls.session_id;
const backfill = component.embeddingBackfill.run(session, { batchSize: calls.backfill.batch_size, databases: [] });
const search = component.retriever.search(session, { query: calls.search.query, topK: calls.search.top_k, similarityThreshold: undefined, origins: [] });
const context = component.contextBuilder.build(session, { task: calls.context.task, topK: calls.context.top_k, maxTokens: undefined, dbWeights: [], buckets: [] });
const track = component.patchLogger.trackContributors(session, {
  vectorIds: calls.track.vector_ids, success: calls.track.success, patchId: calls.track.patch_id,
  contribution: calls.track.contribution, roiTag: calls.track.roi_tag,
});

// One canonical shape (snake_case, plain numbers) shared with the Rust test.
console.log(JSON.stringify({
  backfill: {
    session_id: backfill.sessionId, status: backfill.status,
    databases: backfill.databases.map((d) => ({ name: d.name, embedded: Number(d.embedded), skipped: Number(d.skipped), batches: d.batches, error: d.error ?? null })),
  },
  search: {
    session_id: search.sessionId,
    hits: search.hits.map((h) => ({ origin_db: h.originDb, record_id: h.recordId ?? null, score: h.score, reason: h.reason, metadata: JSON.parse(h.metadata) })),
    fallback: search.fallback ? { reason: search.fallback.reason, confidence: search.fallback.confidence } : null,
  },
  context: {
    session_id: context.sessionId, context: context.context,
    entries: context.entries.map((e) => ({ bucket: e.bucket, origin_db: e.originDb, id: e.id, score: e.score, trimmed: e.trimmed, dropped: e.dropped, reliability_source: e.reliabilitySource })),
  },
  track: { session_id: track.sessionId, status: track.status, written_to: track.writtenTo, rows: track.rows, roi_tag: track.roiTag, warnings: track.warnings },
  patch_rows: patchOutcomes.map((r) => [r.originDb ?? null, r.vectorId ?? null]),
  metrics,
}, null, 2));
