"""What the demo says at each step, in English and Chinese (the audience is often Chinese).

One table per language, same keys; `say(lang, key, **facts)` fills in the facts. A key missing in one language is a
bug the tests catch (tests/test_demo.py compares the key sets).
"""

from __future__ import annotations

import re

LANGUAGES = ("en", "zh")

EN: dict[str, str] = {
    "title": "How an identifier lookup walks the Handle hierarchy",
    "starting": "Starting the teaching topology ({config}) in this process: every node is its own HTTP service "
                "on 127.0.0.1.",
    "started": "{nodes} nodes up in {seconds:.2f} s.",
    "using_running": "Using the topology already running from {state_dir}.",
    "tiers": "The hierarchy: {roots} root node(s), {secondaries} industry secondary nodes, {enterprises} enterprise "
             "nodes, {resolvers} public recursive resolver(s){mirrors}.",
    "tiers_mirrors": ", and {count} mirror server(s) standing by for their primaries",
    "tier_root": "root",
    "tier_secondary": "secondary",
    "tier_enterprise": "enterprise",
    "tier_resolver": "resolver",
    "tier_cache": "cache",
    "tier_unknown": "node",
    "tier_mirror": "mirror",
    "col_tier": "tier",
    "col_nodes": "nodes",
    "col_prefixes": "prefixes",
    "step_register": "Step 1 - register an identifier",
    "register": "The owner of prefix {prefix} signs in at its enterprise node {node} with the secret key `up` "
                "generated for it, and creates {handle}.",
    "registered": "{node} checked the key against the prefix's HS_ADMIN and stored the identifier ({ms:.2f} ms).",
    "register_failed": "{node} refused the write: {message}",
    "step_iterative": "Step 2 - resolve it iteratively",
    "iterative": "The client knows only the root nodes. It asks a root for the prefix handle 0.NA/{prefix}, follows "
                 "the referrals down the tiers, then asks the enterprise node for the identifier itself.",
    "iterative_done": "{hops} requests, {ms:.2f} ms: root -> secondary -> enterprise.",
    "step_cache": "Step 3 - resolve it again: the client cache",
    "cache": "The client kept every answer for the time its values allow (their TTL), so it asks nobody this time.",
    "cache_done": "{hops} requests: answered from the client cache in {ms:.2f} ms (the walk took {first_ms:.2f} ms).",
    "step_resolver": "Step 4 - ask the public recursive resolver",
    "resolver": "A client can also send one request to the recursive resolver {node}, which walks the hierarchy on "
                "its behalf and keeps the answers in a cache shared by all its clients.",
    "resolver_done": "The resolver sent {hops} requests upstream; the client waited {ms:.2f} ms for one answer.",
    "step_resolver_again": "Step 5 - another client asks the resolver the same",
    "resolver_again": "A second client asks {node} for the same identifier.",
    "resolver_again_done": "{hops} requests upstream: the resolver answered from its shared cache in {ms:.2f} ms.",
    "step_failover": "Step 6 - a node dies: failover",
    "failover": "We stop the enterprise node {node}. Its prefix handle lists a mirror, {mirror}, after the primary, "
                "so a new client (empty cache) falls over to the mirror.",
    "failover_done": "{node} did not answer ({failed_ms:.2f} ms lost); {mirror} answered the values. The lookup "
                     "still succeeded in {ms:.2f} ms.",
    "failover_lost": "The lookup failed: {message}",
    "failover_skipped": "Stopping a node needs the demo's own topology: run `handlesim demo` without --state-dir "
                        "to see a node die and a mirror take over.",
    "failover_no_mirror": "The enterprise {node} has no mirror in this topology, so its identifiers would be "
                          "unreachable while it is down; add [mirrors] enterprise = 1 to the config.",
    "step_summary": "What the class saw",
    "summary_walk": "iterative walk",
    "summary_cache": "again, client cache",
    "summary_resolver": "resolver, first time",
    "summary_resolver_cache": "resolver, cached",
    "summary_failover": "primary down, mirror",
    "col_lookup": "lookup",
    "col_requests": "requests",
    "col_ms": "ms",
    "hop_asked": "asked",
    "hop_from_cache": "answered from the cache, no request sent",
    "hop_no_answer": "no answer",
    "hop_site": "success: {values}, HS_SITE -> {node}",
    "hop_values": "success: {values}",
    "client": "client",
    "values_of": "Values of {handle}",
    "press_enter": "Press Enter for the next step ",
    "stopping": "Stopping the demo topology.",
    "web_hint": "Open the page, type an identifier and press Resolve; click a node to stop or start it. Ctrl-C ends.",
    "done": "Done. Try it yourself: handlesim demo --web (this topology, its mirrors and the page), then open the "
            "page it prints.",
}

ZH: dict[str, str] = {
    "title": "标识解析如何逐级查询 Handle 层级体系",
    "starting": "正在本进程中启动教学拓扑（{config}）：每个节点都是 127.0.0.1 上独立的 HTTP 服务。",
    "started": "{nodes} 个节点已启动，用时 {seconds:.2f} 秒。",
    "using_running": "使用 {state_dir} 中正在运行的拓扑。",
    "tiers": "层级结构：{roots} 个根节点，{secondaries} 个行业二级节点，{enterprises} 个企业节点，"
             "{resolvers} 个公共递归解析节点{mirrors}。",
    "tiers_mirrors": "，另有 {count} 个镜像服务器为主节点备份",
    "tier_root": "根节点",
    "tier_secondary": "二级节点",
    "tier_enterprise": "企业节点",
    "tier_resolver": "递归节点",
    "tier_cache": "缓存",
    "tier_unknown": "节点",
    "tier_mirror": "镜像",
    "col_tier": "层级",
    "col_nodes": "节点数",
    "col_prefixes": "前缀",
    "step_register": "第 1 步 - 注册一个标识",
    "register": "前缀 {prefix} 的所有者使用 `up` 为其生成的密钥登录企业节点 {node}，创建标识 {handle}。",
    "registered": "{node} 按前缀的 HS_ADMIN 校验了密钥并保存了该标识（{ms:.2f} 毫秒）。",
    "register_failed": "{node} 拒绝了写入：{message}",
    "step_iterative": "第 2 步 - 迭代解析",
    "iterative": "客户端只知道根节点。它先向根节点查询前缀标识 0.NA/{prefix}，沿着转介（referral）逐级向下，"
                 "最后向企业节点查询标识本身。",
    "iterative_done": "共 {hops} 次请求，{ms:.2f} 毫秒：根节点 -> 二级节点 -> 企业节点。",
    "step_cache": "第 3 步 - 再次解析：客户端缓存",
    "cache": "客户端在值的有效期（TTL）内保存了每个应答，所以这一次不需要询问任何节点。",
    "cache_done": "{hops} 次请求：由客户端缓存应答，用时 {ms:.2f} 毫秒（首次逐级查询用时 {first_ms:.2f} 毫秒）。",
    "step_resolver": "第 4 步 - 通过公共递归解析节点查询",
    "resolver": "客户端也可以只向递归解析节点 {node} 发一次请求，由它代为逐级查询，并把应答存入所有客户端共享的缓存。",
    "resolver_done": "递归节点向上游发送了 {hops} 次请求；客户端等待一个应答用时 {ms:.2f} 毫秒。",
    "step_resolver_again": "第 5 步 - 另一个客户端向递归节点查询同一标识",
    "resolver_again": "第二个客户端向 {node} 查询同一个标识。",
    "resolver_again_done": "上游请求 {hops} 次：递归节点直接从共享缓存应答，用时 {ms:.2f} 毫秒。",
    "step_failover": "第 6 步 - 节点故障：故障切换",
    "failover": "我们停止企业节点 {node}。它的前缀标识在主节点之后列出了镜像 {mirror}，"
                "所以新的客户端（缓存为空）会切换到镜像。",
    "failover_done": "{node} 没有应答（损失 {failed_ms:.2f} 毫秒）；{mirror} 返回了标识值。"
                     "查询仍然成功，用时 {ms:.2f} 毫秒。",
    "failover_lost": "查询失败：{message}",
    "failover_skipped": "停止节点需要演示自己启动的拓扑：不带 --state-dir 运行 `handlesim demo`，"
                        "即可看到节点故障后由镜像接管。",
    "failover_no_mirror": "企业节点 {node} 在此拓扑中没有镜像，它停机时其标识将无法解析；"
                          "请在配置中加入 [mirrors] enterprise = 1。",
    "step_summary": "课堂小结",
    "summary_walk": "迭代逐级查询",
    "summary_cache": "再次查询，客户端缓存",
    "summary_resolver": "递归节点，首次",
    "summary_resolver_cache": "递归节点，已缓存",
    "summary_failover": "主节点故障，镜像应答",
    "col_lookup": "查询",
    "col_requests": "请求数",
    "col_ms": "毫秒",
    "hop_asked": "查询",
    "hop_from_cache": "由缓存应答，未发送请求",
    "hop_no_answer": "无应答",
    "hop_site": "成功：{values}，HS_SITE -> {node}",
    "hop_values": "成功：{values}",
    "client": "客户端",
    "values_of": "{handle} 的值",
    "press_enter": "按回车键进入下一步 ",
    "stopping": "正在停止演示拓扑。",
    "web_hint": "打开网页，输入标识并点击“解析”；点击节点可将其停止或重新启动。按 Ctrl-C 结束。",
    "done": "完成。自己试试：handlesim demo --web（同一拓扑、镜像和网页），然后打开它显示的网页。",
}

TABLES = {"en": EN, "zh": ZH}


_ZH_OUTCOMES = ((re.compile(r"^(\d+) values?$"), r"\1 个值"),
                (re.compile(r"^prefix referral to (.*)$"), r"前缀转介（referral）至 \1"),
                (re.compile(r"^service referral to (.*)$"), r"服务转介至 \1"),
                (re.compile(r"^handle not found$"), "标识不存在"))


def outcome_words(lang: str, outcome: str) -> str:
    """A trace hop's outcome (worded in English by core/resolution.py) in the narration's language."""
    if outcome == "1 values":
        outcome = "1 value"
    if lang == "zh":
        for pattern, replacement in _ZH_OUTCOMES:
            if pattern.match(outcome):
                return pattern.sub(replacement, outcome)
    return outcome


def say(lang: str, key: str, **facts: object) -> str:
    """The sentence `key` in `lang` with `facts` filled in."""
    return TABLES[lang][key].format(**facts)
