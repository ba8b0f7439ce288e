/**
 * A labelled retrieval set for agent memory, generated deterministically (no
 * randomness: the same set on every run), so recall@5 and MRR of two
 * embedders can be compared on equal terms.
 *
 * Each case is a fact an agent remembered, written the way an agent would
 * write it, and a question about it asked in other words (synonyms, another
 * word order, no shared content word where the language allows). Around every
 * fact sit the distractors a real memory holds:
 *  - the same kind of fact about another subject (same template, other
 *    names): lexically close, wrong answer;
 *  - the very same sentence in another project and in another agent's private
 *    memory: a correct engine never returns them (isolation), and a wrong one
 *    would rank them first;
 *  - unrelated notes of the same project (meetings, chores, logistics).
 * The query reads as agent `reader` of project `acme`, scopes shared + private.
 */

export interface RetrievalMemory {
  key: string;
  project: string;
  agent: string;
  scope: 'shared' | 'private';
  text: string;
}

export interface RetrievalQuery {
  query: string;
  /** The key of the one memory that answers it. */
  expected: string;
}

export interface RetrievalSet {
  project: string;
  reader: string;
  memories: RetrievalMemory[];
  queries: RetrievalQuery[];
}

interface Subject {
  name: string;
  /** How a question refers to it without repeating its name, where possible. */
  alias: string;
}

// Subjects: suppliers, sites and teams an operations agent keeps notes about.
const SUBJECTS: Subject[] = [
  { name: 'the Lyon steel supplier', alias: 'the French metal vendor' },
  { name: 'the Rotterdam warehouse', alias: 'our Dutch storage depot' },
  { name: 'the Austin data center', alias: 'the Texas server facility' },
  { name: 'the Osaka assembly plant', alias: 'the Japanese factory' },
  { name: 'the Nairobi call center', alias: 'the Kenyan support office' },
  { name: 'the Lisbon design studio', alias: 'the Portuguese creative team' },
  { name: 'the Calgary pipeline crew', alias: 'the Canadian field engineers' },
  { name: 'the Mumbai payroll vendor', alias: 'the Indian salary processor' },
  { name: 'the Hamburg shipping agent', alias: 'the German freight broker' },
  { name: 'the Santiago copper mine', alias: 'the Chilean ore site' },
];

interface Template {
  id: string;
  fact: (s: string) => string;
  question: (alias: string) => string;
}

// Each template: how the memory states it, and a paraphrased question.
const TEMPLATES: Template[] = [
  {
    id: 'late',
    fact: (s) => `${s} delivers its orders late every winter.`,
    question: (a) => `Which partner ships behind schedule during the cold months, ${a}?`,
  },
  {
    id: 'price',
    fact: (s) => `${s} raised its prices by twelve percent this quarter.`,
    question: (a) => `Did ${a} become more expensive recently?`,
  },
  {
    id: 'contact',
    fact: (s) => `Our main contact at ${s} is a woman named Ingrid who answers email within an hour.`,
    question: (a) => `Who is the person to reach at ${a}, and how quickly does she reply?`,
  },
  {
    id: 'outage',
    fact: (s) => `${s} lost power for six hours after a storm in March.`,
    question: (a) => `Was there an electricity blackout at ${a} caused by bad weather?`,
  },
  {
    id: 'audit',
    fact: (s) => `${s} failed its safety inspection because fire exits were blocked.`,
    question: (a) => `Why did ${a} not pass the compliance check on emergency doors?`,
  },
  {
    id: 'contract',
    fact: (s) => `The contract with ${s} expires at the end of June and must be renegotiated.`,
    question: (a) => `When does our agreement with ${a} run out?`,
  },
  {
    id: 'capacity',
    fact: (s) => `${s} can handle twice its current volume without hiring.`,
    question: (a) => `Could ${a} double its throughput with the staff it already has?`,
  },
  {
    id: 'quality',
    fact: (s) => `Customers complained about scratched parts coming from ${s}.`,
    question: (a) => `Have buyers reported damaged components from ${a}?`,
  },
  {
    id: 'language',
    fact: (s) => `Meetings with ${s} must be held in English because nobody there speaks our language.`,
    question: (a) => `What tongue do we use when talking with ${a}?`,
  },
  {
    id: 'payment',
    fact: (s) => `${s} insists on being paid within fifteen days of each invoice.`,
    question: (a) => `How fast does ${a} want its bills settled?`,
  },
  {
    id: 'carbon',
    fact: (s) => `${s} switched to solar panels and cut its emissions in half.`,
    question: (a) => `Has ${a} reduced its carbon footprint with renewable energy?`,
  },
];

// Unrelated notes of the same project: what fills an agent's memory between facts.
const NOTE_SUBJECTS = [
  'the quarterly planning meeting',
  'the office coffee machine',
  'the new onboarding checklist',
  'the team offsite',
  'the wiki migration',
  'the parking permits',
  'the holiday rota',
  'the printer on the third floor',
  'the expense report tool',
  'the security badge renewal',
];
const NOTE_FACTS = [
  (s: string) => `${s} was moved to Thursday afternoon.`,
  (s: string) => `Remember to ask facilities about ${s}.`,
  (s: string) => `${s} needs a new owner after Maria left.`,
  (s: string) => `${s} is documented on the intranet page under tools.`,
  (s: string) => `Nobody has complained about ${s} this month.`,
  (s: string) => `${s} costs less than expected this year.`,
  (s: string) => `The vote on ${s} ended in a tie.`,
  (s: string) => `${s} will be reviewed again in September.`,
];

/** The set: 110 queries over 1,150 memories (see the module docstring). */
export function buildRetrievalSet(): RetrievalSet {
  const project = 'acme';
  const reader = 'reader';
  const memories: RetrievalMemory[] = [];
  const queries: RetrievalQuery[] = [];
  TEMPLATES.forEach((template, t) => {
    SUBJECTS.forEach((subject, s) => {
      const text = template.fact(subject.name.charAt(0).toUpperCase() + subject.name.slice(1));
      const key = `${template.id}:${s}`;
      // Alternate shared and the reader's own private memory: both are readable.
      const scope = (t + s) % 2 === 0 ? 'shared' : 'private';
      memories.push({ key, project, agent: reader, scope, text });
      // The same sentence where the reader must not look.
      memories.push({ key: `${key}:other-project`, project: 'globex', agent: reader, scope: 'shared', text });
      memories.push({ key: `${key}:other-agent`, project, agent: 'analyst', scope: 'private', text });
      queries.push({ query: template.question(subject.alias), expected: key });
    });
  });
  NOTE_SUBJECTS.forEach((subject, s) => {
    NOTE_FACTS.forEach((fact, f) => {
      const text = fact(subject.charAt(0).toUpperCase() + subject.slice(1));
      memories.push({ key: `note:${s}:${f}`, project, agent: reader, scope: 'shared', text });
      // The same notes elsewhere as well: volume in other tenants.
      memories.push({
        key: `note:${s}:${f}:globex`,
        project: 'globex',
        agent: 'scribe',
        scope: 'shared',
        text,
      });
      memories.push({
        key: `note:${s}:${f}:initech`,
        project: 'initech',
        agent: 'scribe',
        scope: 'shared',
        text,
      });
      memories.push({
        key: `note:${s}:${f}:analyst`,
        project,
        agent: 'analyst',
        scope: 'private',
        text: `${text} (analyst's copy)`,
      });
    });
  });
  // Padding in other projects, so the reader's project is one tenant among several.
  for (let i = 0; memories.length < 1150; i++) {
    const subject = SUBJECTS[i % SUBJECTS.length]!;
    const template = TEMPLATES[(i * 7) % TEMPLATES.length]!;
    memories.push({
      key: `pad:${i}`,
      project: `tenant-${i % 5}`,
      agent: 'scribe',
      scope: 'shared',
      text: template.fact(subject.name),
    });
  }
  return { project, reader, memories, queries };
}

export interface RetrievalScores {
  recallAt5: number;
  mrr: number;
}

/** recall@5 and MRR (over the first 10) from the keys each query returned, best first. */
export function scoreRetrieval(
  queries: readonly RetrievalQuery[],
  results: readonly string[][],
): RetrievalScores {
  let found = 0;
  let reciprocal = 0;
  queries.forEach((query, index) => {
    const rank = (results[index] ?? []).indexOf(query.expected);
    if (rank >= 0 && rank < 5) found++;
    if (rank >= 0 && rank < 10) reciprocal += 1 / (rank + 1);
  });
  return { recallAt5: found / queries.length, mrr: reciprocal / queries.length };
}
