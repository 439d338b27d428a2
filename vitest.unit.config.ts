import { defineConfig } from "vitest/config";

// The pure suites (test/unit): no broker, no build, no global setup. npm run test:unit.
export default defineConfig({
  test: {
    include: ["test/unit/**/*.test.ts"],
    // The fuzzed-file suites take about 3 s alone and passed the 5 s default only on a quiet
    // machine; a bound, not a timing (npm test's config allows 60 s).
    testTimeout: 30_000,
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
});
