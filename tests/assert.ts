// The one place tests get their assertions from (node:assert today; swap here if needed).
export {
  deepEqual as assertDeepEqual,
  equal as assertEquals,
  ok as assert,
  rejects as assertRejects,
  throws as assertThrows,
} from "node:assert/strict";
