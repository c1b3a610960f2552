// The management API, with the key held in this module (the tab's memory).

let key = null;

/** Sets (or, with null, forgets) the key every request carries. */
export function setKey(value) {
  key = value;
}

/** Whether a key is held. */
export function hasKey() {
  return key !== null;
}

/** An answer other than 2xx: the API's `{type, message}`. */
export class ApiError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

/** Calls `method path` with `body` (JSON) and answers the parsed JSON. */
export async function api(method, path, body) {
  const headers = { accept: "application/json" };
  if (key !== null) headers["x-api-key"] = key;
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network", "The server could not be reached.");
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    throw new ApiError(
      response.status,
      (data && data.type) || "error",
      (data && data.message) || `The server answered ${response.status}.`,
    );
  }
  return data;
}

/** `encodeURIComponent` for a path segment. */
export const seg = encodeURIComponent;
