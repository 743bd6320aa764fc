// graphile-worker for `python -m bench` (bench/systems/graphile.py drives this file).
//
//   node worker.js migrate       install graphile-worker's schema, then exit
//   node worker.js run           load everything, print "ready", and on a line "go" on
//                                stdin start a worker; on "stop" (or stdin closing) stop
//                                it gracefully and print {"ran": N} (handler calls)
//
// The database is $GRAPHILE_DATABASE_URL. The worker's settings are those of graphile-worker's
// own perfTest/graphile.config.js (its fastest published configuration): 24 concurrent jobs,
// a pool of 25, a local queue of 500 jobs and completions batched with no delay.
"use strict";

const readline = require("readline");
const { Logger, run, runMigrations } = require("graphile-worker");

const CONCURRENT_JOBS = 24;
const TASK = "noop";

// Warnings and errors only: graphile's info lines (one per job unless NO_LOG_SUCCESS is
// set, which the adapter sets as perfTest does) would cost time and flood the pipe.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") {
    process.stderr.write(`graphile-worker ${level}: ${message}\n`);
  }
});

const preset = {
  worker: {
    connectionString: process.env.GRAPHILE_DATABASE_URL,
    concurrentJobs: CONCURRENT_JOBS,
    maxPoolSize: CONCURRENT_JOBS + 1,
    gracefulShutdownAbortTimeout: 2500,
    localQueue: { size: 500, refetchDelay: { durationMs: 10 } },
    completeJobBatchDelay: 0,
    failJobBatchDelay: 0,
  },
};

async function serve() {
  let ran = 0;
  const taskList = {
    [TASK]: () => {
      ran += 1;
    },
  };
  let starting = null; // the runner, once "go" came
  let stopping = null;
  const lines = readline.createInterface({ input: process.stdin });

  const stop = () => {
    stopping ??= (async () => {
      if (starting !== null) {
        await (await starting).stop();
      }
      process.stdout.write(JSON.stringify({ ran }) + "\n");
    })();
    return stopping;
  };
  const finish = () => stop().then(() => process.exit(0), fail);

  lines.on("line", (line) => {
    const command = line.trim();
    if (stopping !== null) {
      return;
    }
    if (command === "go" && starting === null) {
      starting = run({ preset, logger, noHandleSignals: true, taskList, crontab: "" });
      // A worker that dies on its own (lost database) fails the run loudly.
      starting.then((runner) => runner.promise.catch(fail), fail);
    } else if (command === "stop") {
      finish();
    }
  });
  lines.on("close", finish);
  process.stdout.write("ready\n");
}

function fail(error) {
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
}

const command = process.argv[2];
if (command === "migrate") {
  runMigrations({ preset, logger }).then(() => process.exit(0), fail);
} else if (command === "run") {
  serve().catch(fail);
} else {
  fail(`usage: node worker.js migrate|run (got ${command})`);
}
