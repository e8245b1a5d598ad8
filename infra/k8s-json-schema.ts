// Kubernetes API schemas as kubeconform reads them: one strict JSON schema per kind and API version, named
// `{kind}{kindSuffix}.json` the way kubeconform's `-schema-location` templates spell it (`deployment-apps-v1.json`,
// `service-v1.json`, `scaledobject-keda-v1alpha1.json`). Two sources: the Kubernetes OpenAPI v2 document
// (`api/openapi-spec/swagger.json`, shared definitions referenced by `$ref`) and a CustomResourceDefinition's
// `openAPIV3Schema`. "Strict" means an object with declared properties accepts no others, so a misspelt field
// fails instead of being ignored by the API server.
type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

const isObject = (value: Json | undefined): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The suffix kubeconform appends to the lower-cased kind: `-<first label of the group>-<version>`, or `-<version>`
 * for the core group (pkg/registry `schemaPath`).
 */
export function kindSuffix(apiVersion: string): string {
  const [groupOrVersion = '', version] = apiVersion.split('/');
  const firstLabel = (groupOrVersion.split('.')[0] ?? '').toLowerCase();
  return version === undefined ? `-${firstLabel}` : `-${firstLabel}-${version.toLowerCase()}`;
}

/** File name of the schema of `kind` in `apiVersion`, e.g. `horizontalpodautoscaler-autoscaling-v2.json`. */
export function schemaFileName(kind: string, apiVersion: string): string {
  return `${kind.toLowerCase()}${kindSuffix(apiVersion)}.json`;
}

/** Adds JSON `null` to a schema's type: YAML's `key:` with no value is null, and Kubernetes reads it as unset. */
function withNull(type: Json | undefined): Json | undefined {
  if (typeof type === 'string') return [type, 'null'];
  if (Array.isArray(type) && !type.includes('null')) return [...type, 'null'];
  return type;
}

/**
 * One OpenAPI v2 schema node made strict: descriptions, formats and `x-kubernetes-*` annotations dropped (kubeconform
 * does not need them, and the files get far smaller), scalars nullable, IntOrString and Quantity given the types
 * their YAML takes (a port name or number; `500m` or `2`), declared objects closed.
 */
function strictOpenApiNode(node: Json, name?: string): Json {
  if (Array.isArray(node)) return node.map((n) => strictOpenApiNode(n));
  if (!isObject(node)) return node;
  if (name === 'io.k8s.apimachinery.pkg.util.intstr.IntOrString') return { type: ['string', 'integer', 'null'] };
  if (name === 'io.k8s.apimachinery.pkg.api.resource.Quantity') return { type: ['string', 'number', 'null'] };
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'description' || key === 'format' || key.startsWith('x-kubernetes-')) continue;
    if (key === 'properties' && isObject(value)) {
      out.properties = Object.fromEntries(Object.entries(value).map(([p, v]) => [p, strictOpenApiNode(v)]));
    } else {
      out[key] = key === 'type' ? (withNull(value) ?? value) : strictOpenApiNode(value);
    }
  }
  if (out.properties !== undefined && out.additionalProperties === undefined) out.additionalProperties = false;
  return out;
}

/** Names of the definitions `root` refers to, directly or through others. */
function referencedDefinitions(root: Json, definitions: JsonObject): Set<string> {
  const found = new Set<string>();
  const visit = (node: Json): void => {
    if (Array.isArray(node)) node.forEach(visit);
    else if (isObject(node)) {
      const ref = node.$ref;
      if (typeof ref === 'string' && ref.startsWith('#/definitions/')) {
        const target = ref.slice('#/definitions/'.length);
        if (!found.has(target)) {
          found.add(target);
          const definition = definitions[target];
          if (definition !== undefined) visit(definition);
        }
      }
      Object.values(node).forEach(visit);
    }
  };
  visit(root);
  return found;
}

/**
 * The kubeconform schemas of every kind in a Kubernetes OpenAPI v2 document, by file name. Each file holds its kind's
 * schema and, under `definitions`, every definition it refers to, so it stands alone (recursive types such as a
 * CRD's JSONSchemaProps stay references instead of being inlined forever).
 */
export function schemasFromSwagger(swagger: JsonObject): Map<string, JsonObject> {
  const raw = swagger.definitions;
  if (!isObject(raw)) throw new Error('the OpenAPI document has no definitions');
  const strict: JsonObject = {};
  for (const [name, definition] of Object.entries(raw)) strict[name] = strictOpenApiNode(definition, name);
  const files = new Map<string, JsonObject>();
  for (const [name, definition] of Object.entries(raw)) {
    const gvks = isObject(definition) ? definition['x-kubernetes-group-version-kind'] : undefined;
    if (!Array.isArray(gvks)) continue;
    const schema = strict[name];
    if (!isObject(schema)) continue;
    const closure = [...referencedDefinitions(schema, strict)].sort();
    const body: JsonObject = { ...schema, definitions: Object.fromEntries(closure.map((n) => [n, strict[n] ?? {}])) };
    for (const gvk of gvks) {
      if (!isObject(gvk) || typeof gvk.kind !== 'string' || typeof gvk.version !== 'string') continue;
      const apiVersion = gvk.group ? `${String(gvk.group)}/${gvk.version}` : gvk.version;
      // The first definition of a kind wins: later ones are the same meta types (DeleteOptions, WatchEvent) again.
      const file = schemaFileName(gvk.kind, apiVersion);
      if (!files.has(file)) files.set(file, body);
    }
  }
  return files;
}

/**
 * One structural schema node of a CRD made strict: `nullable` becomes a JSON type, declared objects are closed unless
 * they keep unknown fields (`x-kubernetes-preserve-unknown-fields`), descriptions are dropped.
 */
function strictCrdNode(node: Json): Json {
  if (Array.isArray(node)) return node.map(strictCrdNode);
  if (!isObject(node)) return node;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'description' || key === 'nullable' || key.startsWith('x-kubernetes-')) continue;
    if (key === 'properties' && isObject(value)) {
      out.properties = Object.fromEntries(Object.entries(value).map(([p, v]) => [p, strictCrdNode(v)]));
    } else {
      out[key] = strictCrdNode(value);
    }
  }
  if (node.nullable === true) out.type = withNull(out.type) ?? out.type ?? null;
  const open = node['x-kubernetes-preserve-unknown-fields'] === true;
  if (out.properties !== undefined && out.additionalProperties === undefined && !open) out.additionalProperties = false;
  return out;
}

/** The kubeconform schemas of a CustomResourceDefinition (apiextensions.k8s.io/v1), one per served version. */
export function schemasFromCrd(crd: JsonObject): Map<string, JsonObject> {
  const spec = crd.spec;
  if (crd.kind !== 'CustomResourceDefinition' || !isObject(spec) || !isObject(spec.names)) {
    throw new Error('not a CustomResourceDefinition');
  }
  const { group } = spec;
  const { kind } = spec.names;
  if (typeof group !== 'string' || typeof kind !== 'string' || !Array.isArray(spec.versions)) {
    throw new Error('CustomResourceDefinition without group, kind or versions');
  }
  const files = new Map<string, JsonObject>();
  for (const version of spec.versions) {
    if (!isObject(version) || version.served !== true || typeof version.name !== 'string') continue;
    const schema = isObject(version.schema) ? version.schema.openAPIV3Schema : undefined;
    if (!isObject(schema)) throw new Error(`${kind} ${version.name} has no openAPIV3Schema`);
    const strict = strictCrdNode(schema);
    if (isObject(strict)) files.set(schemaFileName(kind, `${group}/${version.name}`), strict);
  }
  return files;
}
