/**
 * One error base for the whole domain. `code` is the stable, snake_case
 * identifier clients match on; `statusCode` is the HTTP status it maps to.
 * Only errors with a status below 500 are ever shown to a client as they are.
 */
export class EdgeSyncError extends Error {
  override name = "EdgeSyncError";
  constructor(
    readonly code: string,
    message: string,
    readonly statusCode = 400,
    readonly details?: unknown,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A request was well-formed JSON but does not match its schema. */
export class ValidationError extends EdgeSyncError {
  override name = "ValidationError";
  constructor(message: string, details?: unknown) {
    super("validation_failed", message, 400, details);
  }
}

export class UnauthorizedError extends EdgeSyncError {
  override name = "UnauthorizedError";
  constructor(message = "A valid bearer token is required.") {
    super("unauthorized", message, 401);
  }
}

export class ForbiddenError extends EdgeSyncError {
  override name = "ForbiddenError";
  constructor(message = "Your role may not do this.") {
    super("forbidden", message, 403);
  }
}

export class NotFoundError extends EdgeSyncError {
  override name = "NotFoundError";
  constructor(message = "No such resource.") {
    super("not_found", message, 404);
  }
}

/** Something the caller may retry: a dependency is down or overloaded. */
export class UnavailableError extends EdgeSyncError {
  override name = "UnavailableError";
  constructor(message = "The service is temporarily unavailable.", options?: ErrorOptions) {
    super("unavailable", message, 503, undefined, options);
  }
}
