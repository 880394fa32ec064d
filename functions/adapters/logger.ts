import { Logger } from "@aws-lambda-powertools/logger";

/** Structured JSON logs; level from POWERTOOLS_LOG_LEVEL (tests set SILENT). */
export function createLogger(serviceName = "edge-sync"): Logger {
  return new Logger({ serviceName });
}
