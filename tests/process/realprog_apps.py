"""Real-program corpus, part 1: applications as aos developers write them.

A token with bint balances, staking, voting and a chat room, each written
here for this suite (after what the aos blueprints do, not copied from
them): plain aos 2 code reading ``msg.From``, ``msg.Tags``, ``msg.Quantity``,
replying with ``msg.reply`` and sending notices with ``Send``.  Each
scenario loads the program with an Eval, sends messages from several
wallets and processes, and ends with a state query.
"""

from __future__ import annotations

from tests.process.conftest import OTHER, OWNER
from tests.process.test_differential import PEER, A, E, P, Program

CAROL = "CarolWallet" + "c" * 32

TOKEN = """
local bint = require('.bint')(256)
local json = require('json')
TokenName, Ticker, Denomination = 'Realdiff Coin', 'RDC', 12
Balances = Balances or { [Owner] = '1000000' }
TotalSupply = TotalSupply or '1000000'
local function positive(q) return q ~= nil and tostring(q):match('^%d+$') ~= nil
  and bint(q) > bint(0) end
Handlers.add('info', 'Info', function(msg)
  msg.reply({ Name = TokenName, Ticker = Ticker, Denomination = tostring(Denomination) })
end)
Handlers.add('balance', 'Balance', function(msg)
  local who = msg.Tags.Recipient or msg.Tags.Target or msg.From
  local bal = Balances[who] or '0'
  msg.reply({ Balance = bal, Ticker = Ticker, Account = who, Data = bal })
end)
Handlers.add('balances', 'Balances', function(msg) msg.reply({ Data = json.encode(Balances) }) end)
Handlers.add('total', 'Total-Supply', function(msg)
  msg.reply({ Action = 'Total-Supply', Data = TotalSupply, Ticker = Ticker })
end)
Handlers.add('transfer', 'Transfer', function(msg)
  if not positive(msg.Quantity) then
    msg.reply({ Action = 'Transfer-Error', Error = 'Quantity must be a positive integer' })
    return
  end
  local have = bint(Balances[msg.From] or '0')
  local qty = bint(msg.Quantity)
  if have < qty then
    msg.reply({ Action = 'Transfer-Error', ['Message-Id'] = msg.Id,
      Error = 'Insufficient Balance!' })
    return
  end
  Balances[msg.From] = tostring(have - qty)
  Balances[msg.Recipient] = tostring(bint(Balances[msg.Recipient] or '0') + qty)
  if msg.Cast then return end
  local debit = { Action = 'Debit-Notice', Recipient = msg.Recipient, Quantity = msg.Quantity,
    Data = 'You transferred ' .. msg.Quantity .. ' to ' .. msg.Recipient }
  local credit = { Target = msg.Recipient, Action = 'Credit-Notice', Sender = msg.From,
    Quantity = msg.Quantity, Data = 'You received ' .. msg.Quantity .. ' from ' .. msg.From }
  for name, value in pairs(msg.Tags) do
    if name:sub(1, 2) == 'X-' then debit[name] = value; credit[name] = value end
  end
  msg.reply(debit)
  Send(credit)
end)
Handlers.add('mint', 'Mint', function(msg)
  if msg.From ~= ao.id and msg.From ~= Owner then
    msg.reply({ Action = 'Mint-Error', Error = 'Only the owner may mint' })
    return
  end
  assert(positive(msg.Quantity), 'Quantity must be a positive integer')
  Balances[msg.From] = tostring(bint(Balances[msg.From] or '0') + bint(msg.Quantity))
  TotalSupply = tostring(bint(TotalSupply) + bint(msg.Quantity))
  msg.reply({ Data = 'Minted ' .. msg.Quantity })
end)
"""

BALANCES = "return require('json').encode(Balances)"

STAKING = """
local bint = require('.bint')(256)
Stakers = Stakers or {}
Unstaking = Unstaking or {}
Delay = 5000
Handlers.add('stake', 'Stake', function(msg)
  local s = Stakers[msg.From] or { amount = '0' }
  s.amount = tostring(bint(s.amount) + bint(msg.Quantity))
  s.since = msg.Timestamp
  Stakers[msg.From] = s
  print('staked ' .. s.amount .. ' at ' .. math.type(msg.Timestamp))
end)
Handlers.add('unstake', 'Unstake', function(msg)
  local s = Stakers[msg.From]
  assert(s and bint(s.amount) >= bint(msg.Quantity), 'Not enough staked')
  s.amount = tostring(bint(s.amount) - bint(msg.Quantity))
  Unstaking[msg.From] = { amount = msg.Quantity, release = msg.Timestamp + Delay }
  msg.reply({ Action = 'Unstake-Pending', Quantity = msg.Quantity,
    Release = tostring(msg.Timestamp + Delay) })
end)
Handlers.add('finalize', 'Finalize', function(msg)
  local done = {}
  for who, u in pairs(Unstaking) do
    if msg.Timestamp >= u.release then done[#done + 1] = who end
  end
  table.sort(done)
  for _, who in ipairs(done) do
    Send({ Target = who, Action = 'Unstaked', Quantity = Unstaking[who].amount })
    Unstaking[who] = nil
  end
  print('finalized ' .. #done)
end)
"""

STAKERS = (
    "local t = {} for who, s in pairs(Stakers) do t[#t + 1] = who:sub(1, 5) .. '=' .. s.amount end"
    " table.sort(t) return table.concat(t, ',')"
)

VOTING = """
Proposals = Proposals or {}
Handlers.add('propose', 'Propose', function(msg)
  local id = tostring(#Proposals + 1)
  Proposals[#Proposals + 1] = { id = id, title = msg.Data, yay = 0, nay = 0, voters = {} }
  msg.reply({ Action = 'Proposed', ['Proposal-Id'] = id })
end)
Handlers.add('vote', 'Vote', function(msg)
  local p = Proposals[tonumber(msg.Tags['Proposal-Id'])]
  if not p then return msg.reply({ Action = 'Vote-Error', Error = 'No such proposal' }) end
  if p.voters[msg.From] then
    return msg.reply({ Action = 'Vote-Error', Error = 'Already voted' })
  end
  p.voters[msg.From] = msg.Tags.Side
  local weight = tonumber(msg.Tags.Weight or '1')
  if msg.Tags.Side == 'yay' then p.yay = p.yay + weight else p.nay = p.nay + weight end
  msg.reply({ Action = 'Voted', Side = msg.Tags.Side })
end)
Handlers.add('tally', 'Tally', function(msg)
  local p = Proposals[tonumber(msg.Tags['Proposal-Id'])]
  msg.reply({ Action = 'Tally', Yay = tostring(p.yay), Nay = tostring(p.nay),
    Data = p.yay > p.nay and 'passed' or 'rejected' })
end)
"""

CHAT = """
Members = Members or {}
Handlers.add('register', 'Register', function(msg)
  Members[msg.From] = msg.Tags.Nickname or msg.From:sub(1, 6)
  print('Registered ' .. Members[msg.From])
  msg.reply({ Action = 'Registered' })
end)
Handlers.add('unregister', 'Unregister', function(msg)
  Members[msg.From] = nil
  msg.reply({ Action = 'Unregistered' })
end)
Handlers.add('broadcast', 'Broadcast', function(msg)
  if not Members[msg.From] then
    return msg.reply({ Action = 'Broadcast-Error', Error = 'Register first' })
  end
  local names = {}
  for who in pairs(Members) do names[#names + 1] = who end
  table.sort(names)
  for _, who in ipairs(names) do
    if who ~= msg.From then
      Send({ Target = who, Action = 'Broadcasted', Nickname = Members[msg.From], Data = msg.Data })
    end
  end
  print('Broadcast to ' .. (#names - 1))
end)
"""


def _to(who: str) -> tuple[str, str]:
    return ("Recipient", who)


APPS: tuple[Program, ...] = (
    # -- a token with bint balances
    P("token-info", E(TOKEN), A("Info"), A("Info", frm=PEER, owner=PEER)),
    P("token-balance-own", E(TOKEN), A("Balance", frm=OWNER), A("Balance", frm=OTHER)),
    P("token-balance-recipient", E(TOKEN), A("Balance", _to(OTHER), frm=OWNER)),
    P("token-balances", E(TOKEN), A("Balances", frm=OTHER), E(BALANCES)),
    P(
        "token-transfer-notices",
        E(TOKEN),
        A("Transfer", _to(OTHER), ("Quantity", "250"), frm=OWNER),
        A("Balance", _to(OTHER), frm=OWNER),
        E(BALANCES),
    ),
    P(
        "token-transfer-forwards-x-tags",
        E(TOKEN),
        A(
            "Transfer",
            _to(PEER),
            ("Quantity", "7"),
            ("X-Memo", "rent"),
            ("X-Order", "42"),
            frm=OWNER,
        ),
    ),
    P(
        "token-transfer-insufficient",
        E(TOKEN),
        A("Transfer", _to(CAROL), ("Quantity", "5"), frm=OTHER),
        A("Transfer", _to(CAROL), ("Quantity", "abc"), frm=OWNER),
        A("Transfer", _to(CAROL), ("Quantity", "0"), frm=OWNER),
        E(BALANCES),
    ),
    P(
        "token-transfer-chain",
        E(TOKEN),
        A("Transfer", _to(OTHER), ("Quantity", "600"), frm=OWNER),
        A("Transfer", _to(CAROL), ("Quantity", "100"), frm=OTHER),
        A("Transfer", _to(OTHER), ("Quantity", "1"), frm=CAROL),
        E(BALANCES),
    ),
    P(
        "token-cast-sends-nothing",
        E(TOKEN),
        A("Transfer", _to(OTHER), ("Quantity", "3"), ("Cast", "1"), frm=OWNER),
    ),
    P(
        "token-mint-by-owner",
        E(TOKEN),
        A("Mint", ("Quantity", "5000"), frm=OWNER),
        A("Total-Supply", frm=OTHER),
        E("return TotalSupply .. ' ' .. Balances[Owner]"),
    ),
    P(
        "token-mint-refused",
        E(TOKEN),
        A("Mint", ("Quantity", "5000"), frm=OTHER),
        A("Mint", ("Quantity", "1"), frm=PEER, owner=PEER),
        E("return TotalSupply"),
    ),
    P(
        "token-bint-beyond-64-bits",
        E(TOKEN),
        A("Mint", ("Quantity", "1" + "0" * 30), frm=OWNER),
        A("Transfer", _to(OTHER), ("Quantity", "9" * 25), frm=OWNER),
        E(BALANCES),
    ),
    P(
        "token-bint-arithmetic",
        E("bint = require('.bint')(256)"),
        E("return tostring(bint('123456789012345678901234567890') * bint(3))"),
        E("return tostring(bint(10) // bint(3)) .. ' ' .. tostring(bint(10) % bint(3))"),
        E("return tostring(bint('5') < bint('40')) .. ' ' .. tostring(bint.ult(1, 2))"),
        E("return tostring(bint.zero()) .. tostring(bint.one()) .. tostring(-bint(7))"),
    ),
    P(
        "token-transfer-by-process",
        E(TOKEN),
        A("Transfer", _to(PEER), ("Quantity", "70"), frm=OWNER),
        A("Transfer", _to(CAROL), ("Quantity", "20"), frm=PEER, owner=PEER),
        E(BALANCES),
    ),
    # -- staking
    P(
        "staking-stake",
        E(STAKING),
        A("Stake", ("Quantity", "100"), frm=OTHER),
        A("Stake", ("Quantity", "50"), frm=OTHER),
        A("Stake", ("Quantity", "9"), frm=CAROL),
        E(STAKERS),
    ),
    P(
        "staking-unstake-finalize",
        E(STAKING),
        A("Stake", ("Quantity", "100"), frm=OTHER),
        A("Unstake", ("Quantity", "40"), frm=OTHER),
        A("Finalize", frm=OWNER),
        E("Delay = 0"),
        A("Finalize", frm=OWNER),
        E(STAKERS),
    ),
    P(
        "staking-unstake-too-much",
        E(STAKING),
        A("Stake", ("Quantity", "10"), frm=OTHER),
        A("Unstake", ("Quantity", "11"), frm=OTHER),
        E(STAKERS),
    ),
    P(
        "timestamp-number-comparison",
        E(
            "Handlers.add('late', function(m) return m.Action == 'Tick'"
            " and m.Timestamp > 1700000002500 end, function(m) print('late tick') end)"
        ),
        E("Handlers.add('early', 'Tick', function(m) print('early tick') end)"),
        A("Tick", frm=OTHER),
        A("Tick", frm=OTHER),
    ),
    P(
        "game-round",
        E(
            "Players = {} Handlers.add('join', 'Join', function(m)"
            " Players[m.From] = { joined = m.Timestamp, hp = 3 }"
            " m.reply({ Action = 'Joined' }) end)"
            " Handlers.add('tick', 'Tick', function(m) local out = {}"
            " for who, p in pairs(Players) do if m.Timestamp - p.joined >= 2000 then"
            " p.hp = p.hp - 1 end if p.hp <= 1 then out[#out + 1] = who end end"
            " table.sort(out) for _, who in ipairs(out) do Players[who] = nil"
            " Send({ Target = who, Action = 'Eliminated' }) end end)"
        ),
        A("Join", frm=OTHER),
        A("Join", frm=CAROL),
        A("Tick", frm=OWNER),
        A("Tick", frm=OWNER),
        A("Tick", frm=OWNER),
        E("local n = 0 for _ in pairs(Players) do n = n + 1 end return n"),
    ),
    # -- voting
    P(
        "voting-propose-vote-tally",
        E(VOTING),
        A("Propose", data="Fund the bridge", frm=OTHER),
        A("Vote", ("Proposal-Id", "1"), ("Side", "yay"), frm=OTHER),
        A("Vote", ("Proposal-Id", "1"), ("Side", "nay"), ("Weight", "3"), frm=CAROL),
        A("Tally", ("Proposal-Id", "1"), frm=OWNER),
    ),
    P(
        "voting-errors",
        E(VOTING),
        A("Propose", data="Rename", frm=OTHER),
        A("Vote", ("Proposal-Id", "1"), ("Side", "yay"), frm=OTHER),
        A("Vote", ("Proposal-Id", "1"), ("Side", "yay"), frm=OTHER),
        A("Vote", ("Proposal-Id", "9"), ("Side", "yay"), frm=CAROL),
        E("return #Proposals .. ' ' .. Proposals[1].yay"),
    ),
    # -- a chat room
    P(
        "chat-register-broadcast",
        E(CHAT),
        A("Register", ("Nickname", "ally"), frm=OTHER),
        A("Register", frm=CAROL),
        A("Register", ("Nickname", "peer"), frm=PEER, owner=PEER),
        A("Broadcast", data="hello all", frm=OTHER),
    ),
    P(
        "chat-unregistered-and-leaving",
        E(CHAT),
        A("Broadcast", data="anyone?", frm=CAROL),
        A("Register", frm=CAROL),
        A("Register", frm=OTHER),
        A("Unregister", frm=OTHER),
        A("Broadcast", data="alone", frm=CAROL),
        E("local n = 0 for _ in pairs(Members) do n = n + 1 end return n"),
    ),
)
