/** The report page's CSS (inlined into the page: it must open with no network). */
export const PAGE_STYLE = `
:root { --fg: #1d2430; --muted: #5b6678; --line: #dde2ea; --bg: #f7f8fa; --hit: #2f9e44; --miss: #e03131; --rec: #1c7ed6; --err: #c2255c; --neg: #e8590c; --redir: #7048e8; --new: #f08c00; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { padding: 12px 20px; background: #fff; border-bottom: 1px solid var(--line); display: flex; gap: 16px; align-items: baseline; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; }
.mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12px; word-break: break-all; }
main { padding: 16px 20px; display: grid; gap: 16px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 14px; }
section h2 { font-size: 15px; margin: 0 0 8px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; min-width: 110px; }
.card .v { font-size: 20px; font-weight: 600; }
.card .k { color: var(--muted); font-size: 12px; }
.misses { border-color: var(--miss); }
.miss { border-left: 3px solid var(--miss); padding: 4px 10px; margin: 8px 0; }
.miss .near { color: var(--muted); }
.miss .todo { margin: 4px 0 0 0; padding-left: 18px; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid var(--line); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
th { cursor: pointer; user-select: none; color: var(--muted); font-weight: 600; }
th.sorted::after { content: " \\2195"; }
td.url { white-space: normal; word-break: break-all; }
td.note { white-space: normal; overflow-wrap: anywhere; font-size: 12px; }
.bar { height: 10px; background: #4c6ef5; border-radius: 2px; min-width: 1px; }
.tag { display: inline-block; padding: 0 6px; border-radius: 8px; color: #fff; font-size: 11px; }
.k-hit { background: var(--hit); } .k-miss { background: var(--miss); } .k-recorded { background: var(--rec); }
.k-error { background: var(--err); } .k-negative { background: var(--neg); } .k-redirect { background: var(--redir); }
.k-new-version { background: var(--new); } .k-ok { background: #868e96; }
.controls { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; margin-bottom: 8px; }
.controls input[type=search] { min-width: 280px; padding: 4px 6px; }
button.f { border: 1px solid var(--line); background: #fff; border-radius: 12px; padding: 2px 10px; cursor: pointer; }
button.f.on { background: var(--fg); color: #fff; }
.hosts tr { cursor: pointer; }
.muted { color: var(--muted); }
canvas { width: 100%; height: 140px; border: 1px solid var(--line); border-radius: 4px; }
`;
